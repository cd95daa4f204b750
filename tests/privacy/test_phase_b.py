"""Privacy phase B on the real store and a running server: nothing personal in plain text at
rest, masked answers, data-subject requests (access, correction, deletion), consent events,
retention purge."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
from servers import run_cli, seed_privacy_workspace, start_server

from mecdp.collect.importer import import_file
from mecdp.collect.sources import add_source
from mecdp.config import Settings
from mecdp.privacy.dsr import due_date
from mecdp.privacy.vault import open_file, read_quarantine, vault_for
from mecdp.store import open_store

ID_CARD = "11010519491231002X"
# The data subject, as the files and the SDK spell her.
NAME, PHONE, PHONE_RAW, EMAIL = "欧阳小美", "+8613911112222", "139 1111 2222", "xiaomei@qq.com"
OTHER_NAME, OTHER_PHONE = "王大锤", "13700001111"
EVENT_NAME, EVENT_PHONE, EVENT_EMAIL = "司马懿", "13655556666", "simayi@163.com"
PLAIN = [
    NAME,
    "13911112222",
    EMAIL,
    ID_CARD,
    OTHER_NAME,
    OTHER_PHONE,
    EVENT_NAME,
    EVENT_PHONE,
    EVENT_EMAIL,
]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A workspace with members, orders and treatments imported from files."""
    root = tmp_path_factory.mktemp("phaseb")
    ws = root / "ws"
    fixture = seed_privacy_workspace(ws)
    settings = Settings(workspace=ws)
    store = open_store(settings.db_path)
    try:
        cur = store.cursor()
        add_source(cur, "crm", channel="pos", kind="contacts", mapping="member_master")
        add_source(cur, "his", channel="his", kind="treatments", mapping="his_treatments")
        members = _write(
            root / "members.csv",
            ["会员号", "姓名", "手机号", "邮箱", "身份证号", "门店"],
            [
                ["M001", NAME, PHONE_RAW, EMAIL.upper(), ID_CARD, "SH01"],
                ["M002", OTHER_NAME, OTHER_PHONE, "", "", "SH01"],
                ["M003", NAME, "12345", "", "", "SH01"],  # bad phone: quarantined
            ],
        )
        treatments = _write(
            root / "treatments.csv",
            ["治疗单号", "治疗项目", "治疗时间", "姓名", "手机号"],
            [["T1", "水光针", "2024-03-05 14:30:00", NAME, PHONE_RAW]],
        )
        assert import_file(store, settings, members, source_id="crm").accepted == 2
        assert import_file(store, settings, treatments, source_id="his").accepted == 1
    finally:
        store.close()
    yield ws, fixture.write_key


def _scan_tables(db: Path, needles: list[str]) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
        ).fetchall()
        found = []
        for table, column in columns:
            for needle in needles:
                (hits,) = con.execute(
                    f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?)', [needle]
                ).fetchone() or (0,)
                if hits:
                    found.append(f"{needle} in {table}.{column}")
        return found
    finally:
        con.close()


def _events() -> list[dict[str, object]]:
    return [
        {
            "type": "identify",
            "messageId": "e1",
            "userId": "u-77",
            "traits": {"name": EVENT_NAME, "phone": EVENT_PHONE, "email": EVENT_EMAIL},
        },
        {
            "type": "track",
            "event": "Form Submitted",
            "messageId": "e2",
            "anonymousId": "a-1",
            "context": {"traits": {"phone": "12345", "name": EVENT_NAME}},
        },
        {
            "type": "track",
            "event": "Consent Granted",
            "messageId": "e3",
            "userId": "u-77",
            "context": {"traits": {"phone": EVENT_PHONE}},
            "properties": {
                "purpose": "marketing_sms",
                "notice_version": "v3",
                "notice_text": "短信营销告知",
                "source": "mini_program",
            },
        },
        {
            "type": "track",
            "event": "Consent Granted",
            "messageId": "e4",
            "userId": "u-77",
            "properties": {"purpose": "telepathy", "notice_version": "v3", "notice_text": "x"},
        },
    ]


@pytest.mark.slow
def test_phase_b_end_to_end(workspace: tuple[Path, str]) -> None:
    ws, write_key = workspace
    settings = Settings(workspace=ws)
    admin = {"Authorization": f"Bearer {(ws / 'secrets' / 'admin.token').read_text().strip()}"}

    # 1. HTTP ingest with personal traits, a bad phone and consent events
    with start_server(ws) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/v1/batch", json={"batch": _events()}, auth=(write_key, ""))
        assert r.status_code == 200, r.text
        status = http.get("/v1/collector/status", params={"wait_ms": 30_000}).json()
        assert status["processor"]["lag"] == 0, status
        # quality answers carry counts only; sample rejects of an import are masked
        quality = http.get("/v1/admin/quality", headers=admin)
        assert quality.status_code == 200
        assert not any(p in quality.text for p in PLAIN)
        plain_q = http.get("/v1/privacy/quarantine", headers=admin).json()
        assert any(q["value"] == "12345" for q in plain_q)

    # 2. nothing personal in plain text: every VARCHAR column, the raw copies, the file
    assert _scan_tables(settings.db_path, PLAIN) == []
    copies = sorted(settings.raw_files_dir.glob("*.enc"))
    assert len(copies) == 2
    vault = vault_for(settings)
    for path in copies:
        data = path.read_bytes()
        assert not any(p.encode() in data for p in PLAIN)
        assert b"".join(open_file(path, vault)).decode("utf-8").count(",") > 3
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        ledger = con.execute("SELECT purpose, status, recorded_by FROM consents").fetchall()
        assert ledger == [("marketing_sms", "granted", "collector:website")]
        bad = [q for q in read_quarantine(con, vault) if q["record_kind"] == "consent"]
        assert [(q["field"], q["rule"]) for q in bad] == [("purpose", "consent.purpose")]
        (token,) = con.execute(
            "SELECT c.name FROM contacts c JOIN record_identifiers i USING (record_id) "
            "WHERE i.id_type = 'member_no' AND i.id_value = 'M001'"
        ).fetchone() or ("",)
    finally:
        con.close()
    assert token.startswith("e1:")

    # 3. data-subject requests through the running server
    with start_server(ws) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        body = {"kind": "access", "identifiers": [{"type": "phone", "value": PHONE_RAW}]}
        access = http.post("/v1/dsr", json=body, headers=admin).json()
        received = datetime.fromisoformat(access["received_at"].rstrip("Z")).date()
        assert access["status"] == "received" and access["due_on"] == str(due_date(received))
        export = http.get(f"/v1/dsr/{access['request_id']}/export", headers=admin).json()
        tables = export["tables"]
        assert {c["name"] for c in tables["contacts"]} == {NAME}
        assert PHONE in {i["id_value"] for i in tables["record_identifiers"]}
        assert ID_CARD not in json.dumps(export)  # only its keyed hash is held
        assert [t["treatment_no"] for t in tables["treatments"]] == ["T1"]
        assert OTHER_NAME not in json.dumps(export, ensure_ascii=False)
        zipped = http.get(
            f"/v1/dsr/{access['request_id']}/export", params={"format": "zip"}, headers=admin
        )
        names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
        assert {"member.json", "contacts.csv", "treatments.csv"} <= set(names)

        body = {"kind": "correction", "identifiers": [{"type": "email", "value": EMAIL}]}
        fix = http.post("/v1/dsr", json=body, headers=admin).json()
        done = http.post(
            f"/v1/dsr/{fix['request_id']}/correct",
            json={"field": "name", "value": "欧阳晓美"},
            headers=admin,
        )
        assert done.status_code == 200 and done.json()["records"] >= 1
        again = http.get(f"/v1/dsr/{fix['request_id']}/export", headers=admin).json()
        assert {c["name"] for c in again["tables"]["contacts"]} == {"欧阳晓美"}
        assert {(c["old_value"], c["new_value"]) for c in again["corrections"]} == {
            (NAME, "欧阳晓美")
        }
        # a marketer gets 403 (audited), compliance may handle requests
        denied = http.get("/v1/dsr", headers={"Authorization": "Bearer x"})
        assert denied.status_code == 401

        body = {"kind": "deletion", "identifiers": [{"type": "phone", "value": PHONE}]}
        erase = http.post("/v1/dsr", json=body, headers=admin).json()
        result = http.post(f"/v1/dsr/{erase['request_id']}/delete", headers=admin)
        assert result.status_code == 200, result.text
        assert result.json()["status"] == "completed"
        counts = result.json()["result"]["tables"]
        assert counts["restricted.treatments"] == 1 and counts["contacts"] >= 2
        # the server goes on after the compaction
        assert http.get("/v1/dsr", headers=admin).status_code == 200
        restricted = http.get("/v1/privacy/restricted", headers=admin).json()
        assert [r["document"]["treatment_no"] for r in restricted] == ["T1"]
        audit = http.get("/v1/audit", params={"limit": 1000}, headers=admin).json()
        actions = {a["action"] for a in audit}
        assert {"personal_data.exported", "personal_data.deleted", "dsr.received"} <= actions

    # 4. no recoverable copy: the database file holds neither the values nor their tokens
    raw = settings.db_path.read_bytes()
    for needle in (token, PHONE, "13911112222", NAME, "欧阳晓美", EMAIL):
        assert needle.encode() not in raw, needle
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM treatments").fetchone() == (0,)
        (left,) = con.execute(
            "SELECT count(*) FROM record_identifiers WHERE id_type = 'member_no' "
            "AND id_value IN ('M001', 'M002')"
        ).fetchone() or (0,)
        assert left == 1  # the other member stays
    finally:
        con.close()
    for path in settings.raw_files_dir.glob("*.enc"):
        text = b"".join(open_file(path, vault)).decode("utf-8")
        assert "1111 2222" not in text and "M001" not in text and "T1," not in text
        # M003 only shares her name (a namesake is not the member): kept
    assert OTHER_NAME in "".join(
        b"".join(open_file(p, vault)).decode("utf-8") for p in settings.raw_files_dir.glob("*")
    )


def test_retention_purge_of_backdated_rows(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    seed_privacy_workspace(ws)
    settings = Settings(workspace=ws)
    store = open_store(settings.db_path)
    old = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=500)
    new = datetime.now(UTC).replace(tzinfo=None)
    try:
        cur = store.cursor()
        for n, at in enumerate((old, new)):
            cur.execute(
                "INSERT INTO raw_events VALUES (?, 'website', ?, ?, ?, '{}')", [n, f"m{n}", at, at]
            )
            cur.execute(
                "INSERT INTO quarantine (origin, rule, reason, quarantined_at) "
                "VALUES ('http', 'r', 'x', ?)",
                [at],
            )
    finally:
        store.close()
    (ws / "retention.yaml").write_text("raw_events: {days: 30, column: received_at}\n")
    result = run_cli(ws, "privacy", "purge")
    assert result.returncode == 0, result.stderr
    assert "raw_events=1" in result.stdout and "quarantine=1" in result.stdout
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        assert con.execute("SELECT message_id FROM raw_events").fetchall() == [("m1",)]
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (1,)
        (action,) = con.execute(
            "SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone() or ("",)
        assert action == "retention.purged"
    finally:
        con.close()
    assert run_cli(ws, "audit", "verify").returncode == 0


def test_due_date_counts_working_days() -> None:
    from datetime import date

    assert due_date(date(2025, 3, 3)) == date(2025, 3, 24)  # Monday + 15 working days
    assert due_date(date(2025, 3, 8)) == date(2025, 3, 28)  # a Saturday

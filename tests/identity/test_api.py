"""OneID over HTTP on a real server, and the CLI verbs in a child process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from identity.factories import Records
from servers import run_cli, seed_privacy_workspace, start_server

from mecdp.config import Settings
from mecdp.identity.service import resolve_identities
from mecdp.store import open_store

PHONE = "+8613812345678"  # the seeded SH01 contact's phone


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    workspace = tmp_path / "ws"
    fixture = seed_privacy_workspace(workspace)
    store = open_store(Settings(workspace=workspace).db_path)
    try:
        records = Records(store)
        store.cursor().execute("UPDATE contacts SET observed_at = TIMESTAMP '2024-01-01'")
        records.add("pos:1", member_no="M1", phone=PHONE, when="2025-01-01 00:00:00")
        records.add("pos:2", member_no="M2", phone="+8613900001111", email="li@qq.com")
        records.add("mall:1", email="li@qq.com", wechat_unionid="oU1")
        resolve_identities(store, workspace=workspace, match=False)
    finally:
        store.close()
    return workspace, fixture.api_keys


def test_identity_routes_mask_resolve_and_split(tmp_path: Path) -> None:
    workspace, keys = _workspace(tmp_path)
    marketer = {"Authorization": f"Bearer {keys['marketer']}"}
    consultant = {"Authorization": f"Bearer {keys['consultant']}"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    with start_server(workspace) as server, httpx.Client(base_url=server.url) as http:
        found = http.get("/v1/identity/resolve", params={"ref": f"phone:{PHONE}"}, headers=marketer)
        assert found.status_code == 200, found.text
        one_id = found.json()["one_id"]
        assert found.json()["status"] == "found"
        ids = http.get(f"/v1/identity/persons/{one_id}/identifiers", headers=marketer).json()
        values = {i["id_type"]: i["id_value"] for i in ids["identifiers"]}
        assert values["phone"] == "138****5678" and values["member_no"] != "M1"
        # A consultant of SH01 serving the member sees the phone (and it is audited).
        shown = http.get(
            f"/v1/identity/persons/{one_id}/identifiers",
            params={"purpose": "service"},
            headers=consultant,
        ).json()
        assert {i["id_value"] for i in shown["identifiers"]} >= {PHONE}
        audit = http.get(
            "/v1/audit", params={"action": "personal_data.read_unmasked"}, headers=admin
        ).json()
        assert any(f"one_id:{one_id}" in a["member_refs"] for a in audit)
        graph = http.get(f"/v1/identity/persons/{one_id}/graph", headers=marketer).json()
        assert PHONE not in json.dumps(graph)
        assert {e["record_id"] for e in graph["edges"]} == {"c_sh", "pos:1"}
        # Marketers may not split; admins may, and the person comes apart.
        body = {"action": "remove_identifier", "id_type": "phone", "id_value": PHONE}
        assert http.post("/v1/identity/split", json=body, headers=marketer).status_code == 403
        done = http.post("/v1/identity/split", json=body, headers=admin)
        assert done.status_code == 200, done.text
        after = http.get(
            "/v1/identity/resolve", params={"ref": "member_no:M1"}, headers=marketer
        ).json()
        assert after["one_id"] is not None
        history = http.get(f"/v1/identity/persons/{one_id}/history", headers=marketer).json()
        assert "remove_identifier" in [h["action"] for h in history]
        assert http.get("/v1/identity/review", headers=marketer).json() == []
        missing = http.post("/v1/identity/review/nope/approve", headers=admin)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_cli_resolve_and_explain(tmp_path: Path) -> None:
    workspace, _ = _workspace(tmp_path)
    rebuilt = run_cli(workspace, "resolve", "--no-match", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["persons"] == 2
    explained = run_cli(workspace, "identity", "explain", "email:li@qq.com")
    assert explained.returncode == 0, explained.stderr
    assert "wechat_unionid:oU1" in explained.stdout and "mall:1" in explained.stdout
    bad = run_cli(workspace, "identity", "explain", "no-colon")
    assert bad.returncode == 2 and "<type>:<value>" in bad.stderr
    unknown = run_cli(workspace, "identity", "resolve", "phone:+8610000000000")
    assert unknown.returncode == 0 and '"unknown"' in unknown.stdout

"""Consent files into the ledger: Chinese headers, GBK, bad rows quarantined, audited."""

from __future__ import annotations

from pathlib import Path

from servers import run_cli

from mecdp.config import Settings, init_workspace
from mecdp.privacy import consent
from mecdp.privacy.audit import verify_audit
from mecdp.privacy.consent_import import import_consents
from mecdp.store import open_store

NOTICE = "我们将通过短信向您发送优惠信息，您可随时回复TD退订。"
CSV = f"""手机号,目的,状态,告知版本,告知文本,授权时间
138 0013 8000,marketing_sms,同意,v2024.1,{NOTICE},2024/3/5 10:00
138-0013-8000,marketing_sms,撤回,v2024.1,{NOTICE},2024/6/1 09:30
13900139000,marketing_sms,同意,v2024.1,{NOTICE},2024/6/2
13900139000,telepathy,同意,v2024.1,{NOTICE},2024/6/2
12345,marketing_email,同意,v2024.1,{NOTICE},2024/6/2
"""


def test_consent_file_records_good_rows_and_quarantines_bad_ones(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    init_workspace(settings)
    path = tmp_path / "门店授权.csv"
    path.write_bytes(CSV.encode("gbk"))
    store = open_store(settings.db_path)
    try:
        report = import_consents(store, settings, path, source="store_paper", actor="tester")
        assert (report.rows_read, report.recorded, report.quarantined) == (5, 3, 2)
        assert report.rejects_by_rule == {"consent.purpose": 1, "phone.invalid": 1}
        cur = store.cursor()
        withdrawn = consent.member_ref_for(settings.key(), "phone", "+8613800138000")
        granted = consent.member_ref_for(settings.key(), "phone", "+8613900139000")
        # the later withdrawal wins; the other member's grant stands
        assert not consent.may(cur, withdrawn, "marketing_sms").allowed
        assert consent.may(cur, granted, "marketing_sms").allowed
        assert not consent.may(cur, granted, "marketing_email").allowed
        quarantined = cur.execute(
            "SELECT origin, record_kind, ref, field, rule FROM quarantine ORDER BY ref"
        ).fetchall()
        assert quarantined == [
            ("file", "consent", "门店授权.csv:5", "purpose", "consent.purpose"),
            ("file", "consent", "门店授权.csv:6", "phone", "phone.invalid"),
        ]
        # no plain phone in the ledger or the quarantine
        stored = str(cur.execute("SELECT * FROM consents").fetchall())
        stored += str(cur.execute("SELECT value, payload, reason FROM quarantine").fetchall())
        assert "13800138000" not in stored and "12345" not in stored
        actions = [r[0] for r in cur.execute("SELECT action FROM audit_log").fetchall()]
        assert "consent.import" in actions
        assert verify_audit(cur).ok
    finally:
        store.close()


def test_consent_import_cli_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("手机号,备注\n13800138000,x\n", encoding="utf-8")
    result = run_cli(tmp_path / "ws", "consent", "import", str(path), "--source", "paper")
    assert result.returncode == 2
    assert "purpose" in result.stderr

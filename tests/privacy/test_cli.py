"""`mecdp audit verify` on the workspace store: exit 0 when intact, 1 naming the edited row."""

from __future__ import annotations

from pathlib import Path

import duckdb
from servers import run_cli

from mecdp.config import Settings, init_workspace
from mecdp.privacy import auth
from mecdp.privacy.audit import AuditEntry, append_audit, audited_transaction
from mecdp.store import open_store


def test_audit_verify_detects_a_row_edited_with_plain_sql(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    settings = Settings(workspace=ws)
    init_workspace(settings)
    store = open_store(settings.db_path)
    with audited_transaction(store, head_file=ws / "secrets" / "audit.head") as cur:
        for name, role in (("li.ops", "marketer"), ("chen.audit", "compliance")):
            auth.add_user(cur, name, "a long enough password", role)
            entry = AuditEntry("cli", "user.created", target=f"user:{name}", detail={"role": role})
            append_audit(cur, entry)
    store.close()
    intact = run_cli(ws, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "2 rows" in intact.stdout
    assert (ws / "secrets" / "data.keys").is_file()  # the key ring is created on first use

    con = duckdb.connect(str(ws / "mecdp.duckdb"))
    con.execute('UPDATE audit_log SET detail = \'{"role": "admin"}\' WHERE seq = 1')
    con.close()
    tampered = run_cli(ws, "audit", "verify")
    assert tampered.returncode == 1
    assert "row 1" in tampered.stderr and "changed" in tampered.stderr

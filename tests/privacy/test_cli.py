"""`mecdp audit verify` on the workspace store: exit 0 when intact, 1 naming the edited row."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from servers import run_cli


def test_audit_verify_detects_a_row_edited_with_plain_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    monkeypatch.setenv("MECDP_USER_PASSWORD", "a long enough password")
    for name, role in (("li.ops", "marketer"), ("chen.audit", "compliance")):
        added = run_cli(ws, "user", "add", name, "--role", role)
        assert added.returncode == 0, added.stderr
    assert (ws / "secrets" / "data.keys").is_file()
    intact = run_cli(ws, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "2 rows" in intact.stdout

    con = duckdb.connect(str(ws / "mecdp.duckdb"))
    con.execute('UPDATE audit_log SET detail = \'{"role": "admin"}\' WHERE seq = 1')
    con.close()
    tampered = run_cli(ws, "audit", "verify")
    assert tampered.returncode == 1
    assert "row 1" in tampered.stderr and "changed" in tampered.stderr

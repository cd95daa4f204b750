"""The `mecdp` command line, run as a real child process."""

from __future__ import annotations

import json
from pathlib import Path

from servers import RunningServer, run_cli

from mecdp.store.duckdb_store import migrations


def test_init_creates_workspace_with_schema(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "ws", "init")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ws" / "mecdp.duckdb").is_file()
    latest = max(version for version, _, _ in migrations())
    assert f"schema version {latest}" in result.stdout
    # secrets are private to the owner
    assert (tmp_path / "ws" / "secrets").stat().st_mode & 0o077 == 0


def test_source_add_prints_write_key_last_and_list_hides_it(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    added = run_cli(ws, "source", "add", "website", "--channel", "web")
    assert added.returncode == 0, added.stderr
    write_key = added.stdout.strip().splitlines()[-1]
    assert write_key.startswith("wk_") and len(write_key) > 20
    listed = run_cli(ws, "source", "list")
    assert "website" in listed.stdout
    assert write_key not in listed.stdout


def test_bad_input_exits_2_naming_the_field(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    bad_channel = run_cli(ws, "source", "add", "shop", "--channel", "telepathy")
    assert bad_channel.returncode == 2
    assert "channel" in bad_channel.stderr and "telepathy" in bad_channel.stderr
    missing = run_cli(ws, "ingest", str(tmp_path / "nope.csv"), "--source", "shop")
    assert missing.returncode == 2
    assert "nope.csv" in missing.stderr
    duplicate = run_cli(ws, "source", "add", "shop", "--channel", "pos")
    assert duplicate.returncode == 0
    again = run_cli(ws, "source", "add", "shop", "--channel", "pos")
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_writing_verbs_go_through_a_running_server(server: RunningServer) -> None:
    # The server owns the DuckDB file; the CLI can only succeed by calling it.
    added = run_cli(server.workspace, "source", "add", "mini_program", "--channel", "wechat_mp")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().splitlines()[-1].startswith("wk_")
    quality = run_cli(server.workspace, "quality", "--json")
    assert quality.returncode == 0, quality.stderr
    rows = json.loads(quality.stdout)
    assert [r["source_id"] for r in rows] == ["mini_program"]
    assert rows[0]["channel"] == "wechat_mp"
    bad = run_cli(server.workspace, "source", "add", "x", "--channel", "web")
    assert bad.returncode == 2
    assert "source name" in bad.stderr

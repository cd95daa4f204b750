"""Test support: run the real `mecdp` CLI and a real `mecdp serve` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `mecdp` command line in a child process."""
    env = {**os.environ, "MECDP_WORKSPACE": str(workspace), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mecdp", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@dataclass
class RunningServer:
    url: str
    workspace: Path
    process: subprocess.Popen[bytes]

    def admin_headers(self) -> dict[str, str]:
        token = (self.workspace / "secrets" / "admin.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}


@contextmanager
def start_server(workspace: Path) -> Iterator[RunningServer]:
    """Start `mecdp serve` over `workspace`; stop it on exit."""
    port = free_port()
    env = {**os.environ, "MECDP_WORKSPACE": str(workspace)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mecdp", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"server did not start: {stderr}") from None
            time.sleep(0.1)
    try:
        yield RunningServer(url, workspace, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


# --- privacy (issue 3): a workspace with one user and one API key per role -----------------

PASSWORD = "correct horse battery"  # noqa: S105 - a test user's password


@dataclass
class PrivacyFixture:
    """Credentials and data seeded into a workspace before its server starts."""

    api_keys: dict[str, str]  # role -> API key
    write_key: str
    contacts: dict[str, str]  # record_id -> store_code


def seed_privacy_workspace(workspace: Path) -> PrivacyFixture:
    """Users `<role>1` (consultants serve store SH01), an API key per role, a write key and two
    contact records (one in SH01, one in BJ01, name and phone encrypted), written to the real
    store before serving."""
    import pyarrow as pa

    from mecdp.collect.sources import add_source
    from mecdp.config import Settings, init_workspace
    from mecdp.privacy import auth
    from mecdp.privacy.crypto import load_keyring
    from mecdp.privacy.roles import Role
    from mecdp.privacy.vault import vault_for, write_people
    from mecdp.store import open_store

    settings = Settings(workspace=workspace)
    init_workspace(settings)
    load_keyring(settings)
    store = open_store(settings.db_path)
    try:
        cur = store.cursor()
        keys = {}
        for role in Role:
            store_code = "SH01" if role is Role.CONSULTANT else None
            auth.add_user(cur, f"{role.value}1", PASSWORD, role.value, store_code)
            keys[role.value], _ = auth.create_api_key(
                cur, f"{role.value} key", role.value, "test", store_code
            )
        write_key = add_source(cur, "website", channel="web").write_key
        contacts = {"c_sh": "SH01", "c_bj": "BJ01"}
        people = {"c_sh": ("欧阳娜娜", "+8613812345678"), "c_bj": ("李四", "+8613900001111")}
        ids = list(contacts)
        write_people(
            cur,
            vault_for(settings),
            contacts=pa.table(
                {
                    "record_id": ids,
                    "record_kind": ["members"] * len(ids),
                    "source_id": ["crm"] * len(ids),
                    "name": [people[r][0] for r in ids],
                    "store_code": [contacts[r] for r in ids],
                }
            ),
            identifiers=pa.table(
                {
                    "record_id": ids,
                    "record_kind": ["members"] * len(ids),
                    "source_id": ["crm"] * len(ids),
                    "id_type": ["phone"] * len(ids),
                    "id_value": [people[r][1] for r in ids],
                }
            ),
        )
    finally:
        store.close()
    return PrivacyFixture(keys, write_key, contacts)

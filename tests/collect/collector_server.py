"""Helpers for collector tests: `mecdp serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx

from mecdp.collect.sources import add_source
from mecdp.config import Settings, init_workspace
from mecdp.store import open_store

START_TIMEOUT_S = 60.0  # a shared, busy machine can take half a minute to start a server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """One `mecdp serve` process owning `workspace`."""

    workspace: Path
    port: int
    write_keys: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workspace.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "MECDP_STREAM_INTERVAL_MS": "50"}
        env.pop("MECDP_WORKSPACE", None)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mecdp",
                    "--workspace",
                    str(self.workspace),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def status(self, wait_ms: int = 0) -> dict[str, Any]:
        res = httpx.get(f"{self.url}/v1/collector/status", params={"wait_ms": wait_ms}, timeout=70)
        res.raise_for_status()
        data: dict[str, Any] = res.json()
        return data

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Read the store while the server is stopped (DuckDB: one process owns the file)."""
        con = duckdb.connect(str(self.workspace / "mecdp.duckdb"), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def make_workspace(root: Path, sources: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A workspace with event sources {name: channel}; returns their write keys."""
    settings = Settings(workspace=root)
    init_workspace(settings)
    store = open_store(settings.db_path)
    try:
        keys = {
            name: add_source(store.cursor(), name, channel=channel).write_key
            for name, channel in sources.items()
        }
        keys["pos_files"] = add_source(
            store.cursor(), "pos_files", channel="pos", kind="orders"
        ).write_key
    finally:
        store.close()
    return root, keys

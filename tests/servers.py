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

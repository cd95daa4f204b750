"""Collector fixtures: a real `mecdp serve` on a free loopback port with a tmp workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from collect.collector_server import RunningServer, free_port, make_workspace


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    workspace, keys = make_workspace(tmp_path / "ws", {"web_site": "web", "mini_app": "wechat_mp"})
    srv = RunningServer(workspace=workspace, port=free_port(), write_keys=keys)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()

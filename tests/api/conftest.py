"""Fixtures: a real `mecdp serve` process over a workspace in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import RunningServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with start_server(tmp_path / "ws") as running:
        yield running

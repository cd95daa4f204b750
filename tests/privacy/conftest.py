"""Fixtures: a real workspace store (DuckDB file in tmp_path) with the privacy tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mecdp.config import Settings, init_workspace
from mecdp.store import Store, open_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(workspace=tmp_path / "ws")
    init_workspace(s)
    return s


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings.db_path)
    try:
        yield opened
    finally:
        opened.close()

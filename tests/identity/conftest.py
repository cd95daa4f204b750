"""OneID fixtures: a real workspace store in tmp_path and the record factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from identity.factories import Records

from mecdp.config import Settings, init_workspace
from mecdp.store import Store, open_store


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    settings = Settings(workspace=tmp_path / "ws")
    init_workspace(settings)
    return settings.workspace


@pytest.fixture
def store(workspace: Path) -> Iterator[Store]:
    s = open_store(workspace / "mecdp.duckdb")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def records(store: Store) -> Records:
    return Records(store)

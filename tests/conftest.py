"""Shared fixtures. Keep this small: area-specific fixtures live beside their tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local Spark session for the whole run (starting one takes seconds)."""
    pytest.importorskip("pyspark")
    from mecdp.store.engine import local_spark_session

    spark = local_spark_session("mecdp-tests")
    yield spark
    spark.stop()

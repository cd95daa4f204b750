"""clean_records gives identical tables on DuckDB and on local Spark."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from clean.factories import dirty_batch
from clean.helpers import TEST_KEY

from mecdp.clean.kinds import RECORD_KINDS
from mecdp.clean.stage import CleanOptions, clean_records
from mecdp.store.engine import DuckDBEngine, Engine, SparkEngine

pytestmark = pytest.mark.spark


def plain(value: Any) -> Any:
    """A comparable Python value (Spark and DuckDB agree on types, not on tz objects)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, Decimal):
        return str(value)
    return value


def snapshot(engine: Engine, kind: str) -> dict[str, list[tuple[Any, ...]]]:
    engine.register_arrow("dirty", dirty_batch(kind, 400, seed=11))
    options = CleanOptions("src", TEST_KEY, defaults={"city": "上海"})
    out = clean_records(engine, RECORD_KINDS[kind], "dirty", options, "p")
    result = {}
    for name in (out.records, out.contacts, out.identifiers, out.rejects):
        rows = engine.fetch_arrow(f"SELECT * FROM {name}").to_pylist()
        result[name] = sorted((tuple(plain(v) for v in r.values()) for r in rows), key=repr)
        result[name + ":columns"] = [tuple(engine.columns(name))]
    return result


@pytest.mark.parametrize("kind", ["orders", "contacts"])
def test_duckdb_and_spark_clean_identically(spark_session: Any, kind: str) -> None:
    expected = snapshot(DuckDBEngine(duckdb.connect()), kind)
    got = snapshot(SparkEngine(spark_session), kind)
    assert expected["p_records"] and expected["p_rejects"] and expected["p_identifiers"]
    for name, rows in expected.items():
        assert len(got[name]) == len(rows), name
        for want, have in zip(rows, got[name], strict=True):
            assert have == want, name

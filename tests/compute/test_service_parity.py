"""A whole layering run gives the same outputs on DuckDB and on local Spark: every rule tag,
RFM score and cut-off, CLV figure, behaviour tier, system tag and treatment due date."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mecdp.compute import service
from mecdp.compute.config import LayeringConfig
from mecdp.compute.tags import load_definitions
from mecdp.demo.synthetic import AS_OF, synthesise
from mecdp.store import open_store
from mecdp.store.engine import DuckDBEngine, Engine

pytestmark = pytest.mark.spark

OUTPUTS = {
    service.OUT_TAGS: ("one_id", "tag_id"),
    service.OUT_SYSTEM_TAGS: ("one_id", "tag_id"),
    service.OUT_SCORES: ("one_id",),
    service.OUT_DUE: ("one_id", "item_code"),
    service.OUT_CUTOFFS: ("metric", "score"),
}


def _rows(
    engine: Engine, table: str, key: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for row in engine.fetch_arrow(f"SELECT * FROM {table}").to_pylist():
        clean = {
            k: v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v
            for k, v in row.items()
        }
        out[tuple(clean[k] for k in key)] = clean
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def test_duckdb_and_spark_compute_the_same_layering(spark_session: Any) -> None:
    store = open_store(None)
    try:
        synthesise(store.con, 400)
        cur = store.cursor()
        definitions = [d for d in load_definitions(None) if d.rule.kind != "sql"]
        config = LayeringConfig.load(None)
        duck = DuckDBEngine(cur)
        spark = service.spark_engine(cur, spark_session)
        params = {}
        for name, engine in (("duckdb", duck), ("spark", spark)):
            params[name] = service.run_stages(engine, definitions, config, AS_OF)
        assert "skipped" not in params["duckdb"]["clv"]  # CLV was fitted, so it is compared
        for key in ("bgnbd", "gamma_gamma"):
            for field, value in params["duckdb"]["clv"][key].items():
                assert _same(value, params["spark"]["clv"][key][field]), (key, field)
        for table, key in OUTPUTS.items():
            ours, theirs = _rows(duck, table, key), _rows(spark, table, key)
            assert ours.keys() == theirs.keys(), table
            assert len(ours) > 0, table
            for k, row in ours.items():
                other = theirs[k]
                diff = [c for c in row if not _same(row[c], other[c])]
                assert not diff, (table, k, {c: (row[c], other[c]) for c in diff})
    finally:
        store.close()

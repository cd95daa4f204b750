"""The golden-record build gives identical outputs on DuckDB and on Spark."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from profiles.conftest import seed_member
from profiles.factories import Chain

from mecdp.profiles import build
from mecdp.profiles.config import ProfileRules
from mecdp.store import Store
from mecdp.store.engine import DuckDBEngine, Engine, SparkEngine

pytestmark = pytest.mark.spark


def _register(engine: Engine, inputs: dict[str, pa.Table], rules: ProfileRules) -> None:
    for name, table in inputs.items():
        engine.register_arrow(name, table)
    engine.register_arrow(build.TRAIT_RULES, rules.trait_table())
    engine.register_arrow(build.TRAIT_PRIORITY, rules.priority_table())
    engine.register_arrow(build.LEVELS, rules.level_table())


def _rows(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    out = engine.fetch_arrow(f"SELECT * FROM {table}")
    rows = []
    for r in out.to_pylist():
        rows.append(
            tuple(
                (k, v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v)
                for k, v in sorted(r.items())
            )
        )
    return sorted(rows, key=repr)


def test_duckdb_and_spark_build_the_same_golden_records(store: Store, spark_session: Any) -> None:
    chain = Chain(store)
    seed_member(chain)
    for i in range(20):
        phone = f"+86139{i:08d}"
        chain.person(
            "crm_members",
            "2024-01-01 10:00:00",
            name=f"会员{i}",
            gender="F" if i % 3 else "M",
            birthday=f"19{80 + i}-02-0{1 + i % 9}",
            city="上海" if i % 2 else "北京",
            store_code="SH01" if i % 2 else "BJ01",
            phone=phone,
            member_no=f"M1{i:03d}",
        )
        chain.person(
            "douyin_leads",
            "2025-01-01 10:00:00",
            kind="interactions",
            city="杭州",
            name=f"会员{i}号",
            phone=phone,
        )
        chain.order(
            "2024-02-01 10:00:00",
            500 * (i + 1),
            order_type="course_card",
            sessions=3,
            store="SH01" if i % 2 else "BJ01",
            phone=phone,
        )
        chain.appointment("2024-02-03 10:00:00", "arrived", store="BJ01", phone=phone)
        chain.treatment("2024-02-03 11:00:00", phone=phone)
        chain.event("2024-02-04 10:00:00", phone=phone)
    chain.resolve()
    cur = store.cursor()
    inputs = {
        name: cur.execute(f"SELECT * FROM {name}").to_arrow_table() for name in build.INPUT_TABLES
    }
    rules = ProfileRules.load()
    duck = DuckDBEngine(cur)
    spark = SparkEngine(spark_session)
    for engine in (duck, spark):
        if engine is spark:
            _register(engine, inputs, rules)
        else:
            _register(engine, {}, rules)
        build.run_build(engine, scoped=False)
    for table in (build.TIMELINE, *build.OUTPUTS):
        duck_rows = _rows(duck, table)
        assert duck_rows, table
        assert _rows(spark, table) == duck_rows, table

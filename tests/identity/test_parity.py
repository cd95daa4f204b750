"""The deterministic graph gives identical components on DuckDB and on Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from identity.factories import Records

from mecdp.identity import graph
from mecdp.identity.config import IdentityRules
from mecdp.identity.service import graph_inputs, register_inputs
from mecdp.store import Store
from mecdp.store.engine import DuckDBEngine, Engine, SparkEngine

pytestmark = pytest.mark.spark


def _components(engine: Engine) -> tuple[set[frozenset[str]], set[tuple[str, str, str, str]]]:
    graph.build_components(engine)
    records = engine.fetch_arrow(f"SELECT record_id, comp FROM {graph.OUT_RECORDS}").to_pylist()
    groups: dict[str, set[str]] = {}
    for r in records:
        groups.setdefault(r["comp"], set()).add(r["record_id"])
    edges = engine.fetch_arrow(
        f"SELECT record_id, id_type, id_value, status FROM {graph.OUT_EDGES}"
    ).to_pylist()
    return {frozenset(g) for g in groups.values()}, {
        (e["record_id"], e["id_type"], e["id_value"], e["status"]) for e in edges
    }


def test_duckdb_and_spark_build_the_same_components(
    store: Store, workspace: Path, records: Records, spark_session: Any
) -> None:
    # Ordinary chains, a household phone with two member numbers, a blocklisted number,
    # conflicting birthdays, a shared device over the limit.
    for i in range(40):
        records.add(member_no=f"M{i}", phone=f"+8613{i:09d}", source="crm")
        records.add(phone=f"+8613{i:09d}", wechat_unionid=f"oU{i}", source="pos")
        records.add(wechat_unionid=f"oU{i}", douyin_open_id=f"_d{i}", source="wechat")
    records.add(member_no="MA", phone="+8613700000001", birthday="1980-01-01")
    records.add(member_no="MB", phone="+8613700000001", birthday="2001-02-03")
    records.add(phone="+8613700000001", email="fam@qq.com")
    records.add(phone="+8613800000000", member_no="M1")
    records.add(phone="+8613800000000", member_no="M2")
    records.add(phone="+8613900000000", member_no="M3")  # blocklisted by pattern
    records.add(phone="+8613900000000", member_no="M4")
    records.add(member_no="Test-01", email="a@b.cn")  # pattern with a flag
    records.add(phone="+8613755550000", birthday="1990-01-02", name="A")
    records.add(phone="+8613755550000", birthday="1975-08-09", name="B")
    for i in range(12):
        records.add(idfa="KIOSK", member_no=f"K{i}")
    inputs = graph_inputs(store.cursor(), IdentityRules.load())
    duck = DuckDBEngine(store.cursor())
    register_inputs(duck, inputs)
    spark = SparkEngine(spark_session)
    register_inputs(spark, inputs)
    duck_groups, duck_edges = _components(duck)
    spark_groups, spark_edges = _components(spark)
    assert duck_groups == spark_groups
    assert duck_edges == spark_edges
    statuses = {e[3] for e in duck_edges}
    assert statuses == {"linked", "ambiguous", "blocklisted"}
    assert len(duck_groups) < 150  # the chains did link
    blocked = {(e[1], e[2]) for e in duck_edges if e[3] == "blocklisted"}
    assert {("phone", "+8613900000000"), ("member_no", "Test-01")} <= blocked

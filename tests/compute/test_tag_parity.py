"""The compiled tags give identical ``cm_out_tags`` on DuckDB and on Spark."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pytest
from compute.test_tag_factories import (
    AS_OF,
    Clinic,
    ago,
    definition,
    materialise_facts,
    tag_rows,
)
from compute.test_tags import build_world

from mecdp.compute import tags
from mecdp.compute.tag_rules import TagDefinition
from mecdp.store.engine import SparkEngine

pytestmark = pytest.mark.spark


def _extra_definitions() -> list[TagDefinition]:
    """Rule shapes the starter catalogue does not use: number measures, share as a number,
    enum by spend, trait operators and helpers."""
    orders = {"kind": "aggregate", "fact": "orders"}
    rules: list[tuple[str, dict[str, Any], str]] = [
        ("avg_spend", {**orders, "measure": "avg:paid_fen"}, "number"),
        ("max_spend_90", {**orders, "measure": "max:paid_fen", "window_days": 90}, "number"),
        ("days_quiet", {**orders, "measure": "days_since_last"}, "number"),
        (
            "promo_share",
            {"kind": "share", "where": [{"column": "promo", "op": "eq", "value": True}]},
            "number",
        ),
        (
            "top_by_spend",
            {"kind": "preference", "by": "spend",
             "sources": [{"fact": "orders", "column": "item_code"}]},
            "enum",
        ),
        (
            "shanghai_june",
            {
                "kind": "trait",
                "conditions": [
                    {"column": "city", "op": "not_in", "value": ["北京"]},
                    {"column": "birthday", "op": "between", "value": ["1980-01-01", "1995-12-31"]},
                    {"helper": "birthday_month_is_current"},
                ],
            },
            "boolean",
        ),
        (
            "recent_first_order",
            {"kind": "trait", "conditions": [
                {"helper": "days_since", "column": "first_order_at", "op": "lte", "value": 60}]},
            "boolean",
        ),
        (
            "card_sessions_left",
            {"kind": "aggregate", "fact": "course_cards", "measure": "sum:sessions_left"},
            "number",
        ),
    ]  # fmt: skip
    return [definition(rule, value_type, tag_id=tag_id) for tag_id, rule, value_type in rules]


def _sorted(rows: dict[str, dict[str, str]]) -> list[tuple[str, str, str]]:
    return sorted((t, o, v) for t, by_member in rows.items() for o, v in by_member.items())


def test_duckdb_and_spark_compute_the_same_tags(spark_session: Any) -> None:
    clinic = Clinic()
    build_world(clinic)
    clinic.member("bd_member", birthday=date(1990, 6, 9), first_order_at=ago(20))
    clinic.order("bd_member", ago(20), 1000, item="HA01", promo=True)
    clinic.event("bd_member", ago(1))
    definitions = [*tags.load_definitions(None), *_extra_definitions()]
    duck = clinic.engine()
    spark = SparkEngine(spark_session)
    for name, table in clinic.inputs().items():
        spark.register_arrow(name, table)
    materialise_facts(spark)

    duck_rows = _sorted(tag_rows(duck, definitions))
    assert len({t for t, _, _ in duck_rows}) == len(definitions)  # every tag has rows
    assert _sorted(tag_rows(spark, definitions)) == duck_rows

    # scoped (an event refresh): the steps that read facts directly, on a few tags
    scope = {"one_id": ["bd_member", "card_left", "dm_order_181", "pref_injection"]}
    few = [d for d in definitions if d.tag_id in ("dormant", "prefers_injection", "avg_spend")]
    few += [d for d in definitions if d.tag_id in ("card_sessions_left", "unused_course_card")]
    for engine in (duck, spark):
        engine.register_arrow("parity_scope", pa.table(scope))
    scoped = _sorted(tag_rows(duck, few, AS_OF, scope="parity_scope"))
    assert {o for _, o, _ in scoped} == set(scope["one_id"])
    assert _sorted(tag_rows(spark, few, AS_OF, scope="parity_scope")) == scoped

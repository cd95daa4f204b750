"""RFM: values, quintile and fixed cut-offs, the eight groups, tiers and explanations."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from compute.tiers_factory import Facts, materialise_facts, rows, run

from mecdp.compute import behaviour, cycles, facts, rfm
from mecdp.compute.config import LayeringConfig, merge
from mecdp.errors import InputError
from mecdp.store.engine import DuckDBEngine, Engine, SparkEngine

AS_OF = datetime(2025, 1, 1, 12, 0)


def _day(days_before: int, hour: int = 10) -> str:
    return (AS_OF - timedelta(days=days_before)).replace(hour=hour, minute=0).isoformat(sep=" ")


def customer(f: Facts, one_id: str, recency: int, frequency: int, monetary_yuan: float) -> None:
    """A member whose last order was `recency` days ago with `frequency` orders worth
    `monetary_yuan` in the window (frequency 0: one order 400+ days ago)."""
    f.member(one_id)
    if frequency == 0:
        f.order(one_id, _day(recency), 800)
        return
    fen = round(monetary_yuan * 100)
    for i in range(frequency):
        share = fen // frequency + (fen % frequency if i == 0 else 0)
        f.order(one_id, _day(recency + i), share / 100)


def config(**rfm_rules: Any) -> LayeringConfig:
    base = LayeringConfig.load().model_dump(mode="json")
    return LayeringConfig.from_dict(merge(base, {"rfm": rfm_rules}))


def compute(f: Facts, cfg: LayeringConfig) -> tuple[dict[Any, Any], dict[Any, Any]]:
    engine = f.engine(AS_OF)
    run(engine, rfm.rfm_pipelines(cfg, AS_OF))
    cutoffs = engine.fetch_arrow(f"SELECT * FROM {rfm.CUTOFFS}").to_pylist()
    return rows(engine, rfm.OUTPUT), {(r["metric"], r["score"]): r for r in cutoffs}


def bounds(cutoffs: dict[Any, Any], metric: str, score: int) -> tuple[Any, Any]:
    row = cutoffs[metric, score]
    return row["lower_bound"], row["upper_bound"]


# recency, frequency, monetary (yuan): ten scored members with ties
QUINTILE_MEMBERS = {
    "a": (1, 5, 5000),
    "b": (10, 4, 4000),
    "c": (10, 3, 3000),
    "d": (30, 3, 2000),
    "e": (60, 2, 1000),
    "f": (90, 2, 1000),
    "g": (120, 1, 500),
    "h": (200, 1, 500),
    "i": (300, 1, 100),
    "j": (400, 0, 0),
}


@pytest.fixture
def quintile_facts() -> Facts:
    f = Facts()
    for one_id, (r, fr, m) in QUINTILE_MEMBERS.items():
        customer(f, one_id, r, fr, m)
    f.member("lead_old", first_seen="2020-01-01")
    f.member("lead_new", first_seen=_day(30))
    f.member("lead_unknown", first_seen=None)
    f.member("refunded")
    f.order("refunded", _day(5), 900, status="refunded")
    return f


def test_quintile_cutoffs_are_nearest_rank_and_ties_score_alike(quintile_facts: Facts) -> None:
    out, cutoffs = compute(quintile_facts, LayeringConfig.load())

    # recency sorted 1,10,10,30,60,90,120,200,300,400 -> c = 10, 30, 90, 200
    assert {s: bounds(cutoffs, "recency_days", s) for s in range(1, 6)} == {
        5: (None, 10),
        4: (10, 30),
        3: (30, 90),
        2: (90, 200),
        1: (200, None),
    }
    # frequency 0,1,1,1,2,2,3,3,4,5 -> c = 1, 1, 2, 3: score 2 is an empty range
    assert [cutoffs["frequency", s]["upper_bound"] for s in range(1, 6)] == [1, 1, 2, 3, None]
    assert [cutoffs["frequency", s]["members"] for s in range(1, 6)] == [4, 0, 2, 2, 2]
    # monetary (fen) 0,100,500,500,1000,1000,2000,3000,... yuan -> c = 100, 500, 1000, 3000
    assert [cutoffs["monetary_fen", s]["upper_bound"] for s in range(1, 5)] == [
        10_000,
        50_000,
        100_000,
        300_000,
    ]
    assert {r["method"] for r in cutoffs.values()} == {"quintile"}
    assert [cutoffs["recency_days", s]["high"] for s in range(1, 6)] == [
        False,
        False,
        True,
        True,
        True,
    ]

    scores = {k: (v["r_score"], v["f_score"], v["m_score"]) for k, v in out.items()}
    assert scores == {
        "a": (5, 5, 5),
        "b": (5, 5, 5),
        "c": (5, 4, 4),  # recency 10 ties with b: same R score
        "d": (4, 4, 4),
        "e": (3, 3, 3),
        "f": (3, 3, 3),
        "g": (2, 1, 2),
        "h": (2, 1, 2),
        "i": (1, 1, 1),
        "j": (1, 1, 1),
        "lead_old": (None, None, None),
        "lead_new": (None, None, None),
        "lead_unknown": (None, None, None),
        "refunded": (None, None, None),
    }
    assert (out["j"]["recency_days"], out["j"]["frequency"], out["j"]["monetary_fen"]) == (
        400,
        0,
        0,
    )
    assert (out["a"]["recency_days"], out["a"]["frequency"], out["a"]["monetary_fen"]) == (
        1,
        5,
        500_000,
    )


def test_segments_and_tiers_with_quintiles(quintile_facts: Facts) -> None:
    out, _ = compute(quintile_facts, LayeringConfig.load())
    got = {k: (v["rfm_segment"], v["value_tier"]) for k, v in out.items()}
    assert got == {
        **{k: ("important_value", "high_value") for k in "abcdef"},
        "g": ("general_retain", "dormant"),
        "h": ("general_retain", "dormant"),  # also 200 days > 180 without an order
        "i": ("general_retain", "dormant"),
        "j": ("general_retain", "dormant"),
        "lead_old": (None, "dormant"),
        "lead_new": (None, "potential"),  # first seen 30 days ago
        "lead_unknown": (None, "dormant"),
        "refunded": (None, "dormant"),  # refunded orders are no orders
    }
    assert out["lead_old"]["frequency"] == 0 and out["lead_old"]["monetary_fen"] == 0


def test_above_average_rule_compares_with_the_mean_score(quintile_facts: Facts) -> None:
    # mean scores: R 3.1, F 2.8, M 3.0 -> R high from 4, F from 3, M from 3
    out, cutoffs = compute(quintile_facts, config(high_rule="above_average"))
    assert [cutoffs["recency_days", s]["high"] for s in range(1, 6)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert [cutoffs["frequency", s]["high"] for s in range(1, 6)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert out["d"]["rfm_segment"] == "important_value"
    assert out["e"]["rfm_segment"] == "important_keep"  # R3 is below the mean 3.1
    assert out["e"]["value_tier"] == "high_value"


FIXED = {
    "cutoffs": {
        "recency_days": [30, 60, 90, 120],
        "frequency": [1, 2, 3, 4],
        "monetary_fen": [100_000, 200_000, 300_000, 400_000],
    }
}
# recency, frequency, monetary (yuan) reaching each of the eight groups (threshold 3:
# R high <= 90 days, F high >= 3 orders, M high > ¥2,000)
EIGHT = {
    "important_value": (10, 3, 3000),
    "important_develop": (90, 2, 2500),
    "important_keep": (91, 3, 2000.01),
    "important_retain": (150, 1, 5000),
    "general_value": (5, 4, 2000),
    "general_develop": (30, 1, 100),
    "general_keep": (120, 5, 1000),
    "general_retain": (121, 1, 50),
}


@pytest.fixture
def eight_facts() -> Facts:
    f = Facts()
    for one_id, (r, fr, m) in EIGHT.items():
        customer(f, one_id, r, fr, m)
    return f


def test_fixed_cutoffs_reach_each_of_the_eight_groups(eight_facts: Facts) -> None:
    out, cutoffs = compute(eight_facts, config(**FIXED))
    assert {k: v["rfm_segment"] for k, v in out.items()} == {k: k for k in EIGHT}
    assert {k: v["value_tier"] for k, v in out.items()} == {
        "important_value": "high_value",
        "important_keep": "high_value",
        "important_develop": "potential",
        "general_value": "potential",
        "general_develop": "potential",
        "important_retain": "dormant",
        "general_keep": "dormant",
        "general_retain": "dormant",
    }
    assert (out["important_keep"]["r_score"], out["important_keep"]["m_score"]) == (2, 3)
    assert out["general_value"]["m_score"] == 2  # exactly ¥2,000 is not above the cut-off
    assert bounds(cutoffs, "recency_days", 5) == (None, 30)
    assert cutoffs["monetary_fen", 3]["members"] == 3
    assert {r["method"] for r in cutoffs.values()} == {"fixed"}


def test_recency_rule_makes_anyone_dormant(eight_facts: Facts) -> None:
    out, _ = compute(eight_facts, config(**FIXED, dormant_after_days=90))
    assert out["important_develop"]["value_tier"] == "potential"  # 90 days: not more than 90
    assert out["important_keep"]["value_tier"] == "dormant"  # 91 days


def test_tier_mapping_is_configurable(eight_facts: Facts) -> None:
    out, _ = compute(eight_facts, config(**FIXED, tier_of_segment={"general_keep": "potential"}))
    assert out["general_keep"]["value_tier"] == "potential"


def test_window_boundary_and_order_lines() -> None:
    f = Facts()
    f.member("m")
    # the window's first day is 365 days before as_of's day (2025-01-01 in China): it
    # starts at midnight in China, 2024-01-01 16:00 UTC
    f.order("m", "2024-01-01 15:59:59", 100)  # just outside
    f.order("m", "2024-01-01 16:00:00", 200)  # the first moment inside
    f.order("m", _day(3), 300, order_no="X1")
    f.order("m", _day(3), 50, order_no="X1", item="PRD001")  # second line of the same order
    f.order("m", (AS_OF + timedelta(seconds=1)).isoformat(sep=" "), 999)  # after as_of
    out, _ = compute(f, LayeringConfig.load())
    assert (out["m"]["recency_days"], out["m"]["frequency"], out["m"]["monetary_fen"]) == (
        3,
        2,
        55_000,
    )


def test_no_orders_at_all_gives_empty_cutoffs() -> None:
    f = Facts()
    f.member("lead")
    out, cutoffs = compute(f, LayeringConfig.load())
    assert out["lead"]["r_score"] is None and out["lead"]["value_tier"] == "dormant"
    assert len(cutoffs) == 15
    assert all(r["lower_bound"] is None and r["upper_bound"] is None for r in cutoffs.values())
    assert all(r["members"] == 0 for r in cutoffs.values())


def test_explain_names_the_cutoffs_used(eight_facts: Facts) -> None:
    cfg = config(**FIXED)
    out, cutoffs = compute(eight_facts, cfg)
    got = rfm.explain_rfm(out["important_keep"], list(cutoffs.values()), cfg)
    recency, frequency, monetary = got["metrics"]
    assert recency["score"] == 2 and recency["method"] == "fixed"
    assert (recency["lower_bound"], recency["upper_bound"]) == (90, 120)
    assert recency["reason"] == (
        "recency_days = 91 days is > 90 and <= 120 (fixed cut-offs), so R score 2 (low)"
    )
    assert frequency["high"] and monetary["high"]
    assert got["segment"] == {"key": "important_keep", "zh": "重要保持", "en": "Important to keep"}
    assert got["value_tier"]["zh"] == "高价值"
    assert "important_keep maps to high_value" in got["value_tier"]["reason"]

    lead = rfm.explain_rfm(
        {"one_id": "x", "recency_days": None, "frequency": 0, "monetary_fen": 0,
         "r_score": None, "f_score": None, "m_score": None, "rfm_segment": None,
         "value_tier": "dormant"},
        list(cutoffs.values()),
        cfg,
    )  # fmt: skip
    assert not lead["scored"] and lead["segment"] is None
    assert lead["metrics"][0]["reason"] == "no paid order: not scored"


def test_bad_cutoffs_name_the_field() -> None:
    with pytest.raises(InputError, match=r"rfm\.cutoffs\.frequency") as err:
        config(cutoffs={"frequency": [5, 4, 3, 2]})
    assert err.value.field == "rfm.cutoffs.frequency"
    with pytest.raises(InputError, match=r"rfm\.tier_of_segment"):
        config(tier_of_segment={"important_value": "gold"})
    with pytest.raises(InputError, match=r"rfm\.window_dayz"):
        config(window_dayz=30)


def _normalised(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    out = []
    for r in engine.fetch_arrow(f"SELECT * FROM {table}").to_pylist():
        out.append(
            tuple(
                (k, v.replace(tzinfo=None) if isinstance(v, datetime) else v)
                for k, v in sorted(r.items())
            )
        )
    return sorted(out, key=repr)


@pytest.mark.spark
def test_duckdb_and_spark_give_the_same_layers(quintile_facts: Facts, spark_session: Any) -> None:
    f = quintile_facts
    for one_id, (r, fr, m) in EIGHT.items():
        customer(f, one_id, r, fr, m)
    f.order("a", _day(3), 6800, item="INJ001", promo=True)
    f.order("b", _day(3), 2640, item="LAS003", order_type="course_card", sessions=3)
    f.treatment("b", _day(2), "LAS003")
    f.treatment("c", _day(40), "INJ002")
    f.treatment("c", _day(400), "SKN009")
    f.treatment("d", _day(21), "BTX9", item_name="肉毒素(进口)")
    f.interaction("a", _day(2), "wechat", topic="热玛吉")
    f.interaction("a", _day(5), "douyin")
    f.event("a", _day(1))
    f.event("e", _day(60), channel="web", type_="page")
    # quintiles for R and F, fixed cut-offs for M, the above-average rule
    fixed_monetary = {"monetary_fen": FIXED["cutoffs"]["monetary_fen"]}
    cfg = config(cutoffs=fixed_monetary, high_rule="above_average")
    duck = DuckDBEngine(f.con)
    spark = SparkEngine(spark_session)
    for name in facts.INPUT_TABLES:
        spark.register_arrow(name, f.con.execute(f"SELECT * FROM {name}").to_arrow_table())
    for engine in (duck, spark):
        materialise_facts(engine, AS_OF)
        run(engine, rfm.rfm_pipelines(cfg, AS_OF))
        engine.run_pipeline(behaviour.behaviour_steps(cfg, AS_OF), behaviour.OUTPUT)
        engine.run_pipeline(cycles.cycle_steps(cfg, AS_OF), cycles.OUTPUT)
    for table in (rfm.CUTOFFS, rfm.OUTPUT, behaviour.OUTPUT, cycles.OUTPUT):
        expected = _normalised(duck, table)
        assert expected, table
        assert _normalised(spark, table) == expected, table

"""Behaviour tiers: purchase behaviour rules, interaction tiers, preferred category."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from compute.tiers_factory import Facts, rows

from mecdp.compute import behaviour
from mecdp.compute.config import LayeringConfig, merge
from mecdp.errors import InputError

AS_OF = datetime(2025, 1, 1, 12, 0)


def day(days_before: int) -> str:
    """10:00 on the day `days_before` days before as_of."""
    return (AS_OF - timedelta(days=days_before)).replace(hour=10).isoformat(sep=" ")


def config(**behaviour_rules: Any) -> LayeringConfig:
    base = LayeringConfig.load().model_dump(mode="json")
    return LayeringConfig.from_dict(merge(base, {"behaviour": behaviour_rules}))


def compute(f: Facts, cfg: LayeringConfig | None = None) -> dict[Any, dict[str, Any]]:
    engine = f.engine(AS_OF)
    steps = behaviour.behaviour_steps(cfg or LayeringConfig.load(), AS_OF)
    engine.run_pipeline(steps, behaviour.OUTPUT)
    return rows(engine, behaviour.OUTPUT)


@pytest.fixture
def buyers() -> Facts:
    f = Facts()
    for one_id in (
        "vip_repeat",
        "vip_spend",
        "one_high_end",
        "vip_old",
        "course",
        "vip_and_course",
        "promo",
        "promo_lines",
        "promo_under",
        "promo_single",
        "one_time_old",
        "nothing",
    ):
        f.member(one_id)
    f.order("vip_repeat", day(10), 6800, item="INJ001")  # high band
    f.order("vip_repeat", day(200), 19800, item="LAS001")  # luxury
    f.order("vip_spend", day(3), 50_000, item="INJ002")  # exactly ¥50,000, mid band
    f.order("one_high_end", day(3), 6800, item="INJ001")
    f.order("one_high_end", day(4), 100)
    f.order("vip_old", day(10), 6800, item="INJ001")
    f.order("vip_old", day(366), 6800, item="INJ001")  # before the 365-day window
    f.order("course", day(20), 2640, item="LAS003", order_type="course_card", sessions=3)
    f.order("course", day(5), 298)
    f.order("vip_and_course", day(20), 2640, item="LAS003", order_type="course_card")
    f.order("vip_and_course", day(21), 16800, item="INJ005")
    f.order("vip_and_course", day(22), 16800, item="INJ005")
    for i, promo in enumerate((True, True, True, False, False)):  # 3 of 5: share 0.6
        f.order("promo", day(10 + i), 300, promo=promo)
    f.order("promo_lines", day(5), 300, promo=True, order_no="P1")
    f.order("promo_lines", day(5), 100, promo=False, order_no="P1", item="PRD001")
    f.order("promo_lines", day(6), 300, promo=True)
    for i, promo in enumerate((True, True, False, False, False)):
        f.order("promo_under", day(10 + i), 300, promo=promo)
    f.order("promo_single", day(10), 300, promo=True)
    f.order("one_time_old", day(800), 300)
    return f


def test_purchase_tiers_first_matching_rule_wins(buyers: Facts) -> None:
    got = {k: v["purchase_tier"] for k, v in compute(buyers).items()}
    assert got == {
        "vip_repeat": "vip",
        "vip_spend": "vip",
        "one_high_end": "regular",  # one high-end order, spend under ¥50,000
        "vip_old": "regular",  # the second high-end order is outside the window
        "course": "course",
        "vip_and_course": "vip",  # vip comes first
        "promo": "promotion_driven",  # exactly the 0.6 share
        "promo_lines": "promotion_driven",  # an order with a promo line is a promo order
        "promo_under": "regular",
        "promo_single": "one_time",  # one promo order is not a pattern
        "one_time_old": "one_time",  # one order ever, window or not
        "nothing": "none",
    }


def test_purchase_rule_order_and_removal_are_configurable(buyers: Facts) -> None:
    rules = [
        {"tier": "one_time"},
        {"tier": "promotion_driven", "min_promo_share": 0.5, "min_orders": 1},
        {"tier": "vip", "min_high_end_orders": 1, "min_spend_fen": None},
    ]
    out = compute(buyers, config(purchase={"rules": rules}))
    got = {k: v["purchase_tier"] for k, v in out.items()}
    assert got["promo_single"] == "one_time"
    assert got["promo_under"] == "regular"  # 0.4 < 0.5
    assert got["one_high_end"] == "vip"
    assert got["vip_spend"] == "one_time"  # one order ever; one_time comes first now
    assert got["vip_repeat"] == "vip"
    assert got["course"] == "regular"  # no course rule


def test_purchase_window_null_means_all_history(buyers: Facts) -> None:
    got = compute(buyers, config(purchase={"window_days": None}))
    assert got["vip_old"]["purchase_tier"] == "vip"


@pytest.fixture
def talkers() -> Facts:
    f = Facts()
    for one_id in ("high", "edge_high", "edge_low", "broad", "identify_only", "old"):
        f.member(one_id)
    f.member("edge_window")
    f.member("quiet")
    for i in range(10):  # 10 touches, 3 channels, last 2 days ago: 3 + 3 + 3
        f.interaction("high", day(2 + i), ("wechat", "douyin", "call_center")[i % 3])
    # 7 days (3) + 4 touches (2) + 2 channels (2) = 7 -> high
    f.interaction("edge_high", day(7), "wechat")
    f.interaction("edge_high", day(8), "wechat")
    f.interaction("edge_high", day(9), "wechat")
    f.event("edge_high", day(10), channel="web")
    # 8 days (2) + 4 touches (2) + 2 channels (2) = 6 -> low
    f.interaction("edge_low", day(8), "wechat")
    f.interaction("edge_low", day(9), "wechat")
    f.event("edge_low", day(10), channel="web", type_="page")
    f.event("edge_low", day(11), channel="web", type_="screen")
    # 40 days (1) + 3 touches (1) + 3 channels (3) = 5 -> low
    f.interaction("broad", day(40), "xiaohongshu")
    f.interaction("broad", day(41), "douyin")
    f.event("broad", day(42))  # the source's channel (app)
    f.event("identify_only", day(1), channel="web", type_="identify")
    f.interaction("old", day(91), "wechat")
    f.interaction("edge_window", (AS_OF - timedelta(days=90)).isoformat(sep=" "), "wechat")
    return f


def test_interaction_tiers_from_recency_frequency_and_breadth(talkers: Facts) -> None:
    columns = ("interaction_tier", "interaction_score", "interactions_90d", "interaction_channels")
    got = {k: tuple(v[c] for c in columns) for k, v in compute(talkers).items()}
    assert got == {
        "high": ("high", 9, 10, 3),
        "edge_high": ("high", 7, 4, 2),
        "edge_low": ("low", 6, 4, 2),
        "broad": ("low", 5, 3, 3),
        "identify_only": ("none", 0, 0, 0),  # identify calls are not engagement
        "old": ("none", 0, 0, 0),  # 91 days ago: outside the window
        "edge_window": ("low", 3, 1, 1),  # exactly 90 days ago is inside: 1 + 1 + 1
        "quiet": ("none", 0, 0, 0),
    }


def test_interaction_thresholds_are_configurable(talkers: Facts) -> None:
    cfg = config(interaction={"high_min_score": 6, "event_types": None})
    got = compute(talkers, cfg)
    assert got["edge_low"]["interaction_tier"] == "high"
    assert got["identify_only"]["interaction_tier"] == "low"  # every event type counts now


def test_preferred_category_by_spend_then_treatments_then_interest() -> None:
    f = Facts()
    for one_id in ("spend", "tie_spend", "treated", "interest", "list_order", "products", "none"):
        f.member(one_id)
    f.order("spend", day(10), 3000, item="INJ002")
    f.order("spend", day(11), 2000, item="LAS003")
    f.treatment("spend", day(10), "LAS003")
    f.treatment("spend", day(12), "LAS003")
    f.order("tie_spend", day(10), 1000, item="INJ002")
    f.order("tie_spend", day(11), 1000, item="LAS003")
    f.treatment("tie_spend", day(11), "LAS003")
    f.treatment("treated", day(3), "LAS003")
    f.treatment("treated", day(4), "LAS001")
    f.treatment("treated", day(5), "INJ002")
    f.interaction("treated", day(5), "wechat", topic="玻尿酸填充")
    f.interaction("interest", day(5), "douyin", topic="热玛吉")
    f.interaction("interest", day(6), "douyin", topic="价格咨询")  # names no catalog item
    f.treatment("list_order", day(3), "LAS003")
    f.treatment("list_order", day(4), "INJ002")
    f.order("products", day(3), 500, item="PRD001")
    got = {k: v["preferred_category"] for k, v in compute(f).items()}
    assert got == {
        "spend": "注射",  # most spend beats more treatments
        "tie_spend": "光电",  # equal spend: more treatments
        "treated": "光电",  # 2 光电 treatments over 1 注射 and one 注射 interest
        "interest": "光电",  # only content interest
        "list_order": "注射",  # full tie: the earlier listed category
        "products": None,  # 产品 is not a preference category
        "none": None,
    }


def test_bad_behaviour_rules_name_the_field() -> None:
    with pytest.raises(InputError, match=r"behaviour\.purchase\.rules\.0"):
        config(purchase={"rules": [{"tier": "whale"}]})
    with pytest.raises(InputError, match="more than once"):
        config(purchase={"rules": [{"tier": "vip"}, {"tier": "vip"}]})
    with pytest.raises(InputError, match=r"behaviour\.interaction\.recency_points"):
        config(interaction={"recency_points": [{"max_days": -1, "points": 2}]})


def test_without_purchase_rules_every_buyer_is_regular(buyers: Facts) -> None:
    got = {
        k: v["purchase_tier"] for k, v in compute(buyers, config(purchase={"rules": []})).items()
    }
    assert set(got.values()) == {"regular", "none"} and got["nothing"] == "none"

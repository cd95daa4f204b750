"""The starter catalogue on hand-made members: exact membership per tag, window boundaries,
members without facts, value formats, and the rule kinds' edge cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from compute.test_tag_factories import AS_OF, Clinic, ago, definition, tag_rows

from mecdp.compute import tags
from mecdp.compute.tag_columns import FACT_COLUMNS
from mecdp.store.engine import DuckDBEngine

Expected = dict[str, str]
T = "true"


# Each scenario adds members (one_ids prefixed by the tag) to the shared clinic and returns
# what its tag should hold for them: {one_id: value}; members left out must have no row.


def new_customer(c: Clinic) -> Expected:
    c.order(c.member("nc_day90"), ago(90, hour=0), 500)  # exactly 90 days: still new
    c.order(c.member("nc_day91"), ago(91, hour=23), 500)
    c.order("nc_day91", ago(10), 800)  # a recent order does not make an old customer new
    c.member("nc_none")
    c.order(c.member("nc_void"), ago(5), 500, status="refunded")
    c.order(c.member("nc_future"), AS_OF + timedelta(days=1), 500)
    return {"nc_day90": T}


def frequent_visitor(c: Clinic) -> Expected:
    c.member("fv_four")
    for when in (ago(90, hour=0), ago(60), ago(30), ago(0, hour=8)):
        c.appointment("fv_four", when)
    c.member("fv_three")
    for when in (ago(91, hour=23), ago(60), ago(30), ago(1)):
        c.appointment("fv_three", when)
    c.appointment("fv_three", ago(2), "no_show")
    c.member("fv_later")  # the fourth visit comes after as_of
    for when in (ago(50), ago(40), ago(30), AS_OF + timedelta(hours=2)):
        c.appointment("fv_later", when)
    c.member("fv_none")
    return {"fv_four": T}


def luxury_lover(c: Clinic) -> Expected:
    c.order(c.member("lux_thermage"), ago(20), 15000, item="THM01")
    c.order("lux_thermage", ago(40), 800, item="IPL01")
    c.order(c.member("lux_single"), ago(20), 15000, item="THM01")  # one order decides nothing
    c.order(c.member("lux_half"), ago(20), 500, item="HA01")  # high band: exactly 50%
    c.order("lux_half", ago(30), 500, item="SKN01")
    c.order(c.member("lux_cheap"), ago(20), 800, item="IPL01")
    c.order("lux_cheap", ago(25), 300, item="SKN01")
    c.order(c.member("lux_old"), ago(400), 15000, item="THM01")
    c.order("lux_old", ago(10), 800, item="IPL01")
    c.order("lux_old", ago(20), 800, item="IPL01")
    return {"lux_thermage": T, "lux_half": T}


def promotion_driven(c: Clinic) -> Expected:
    c.member("promo_60")
    for i, promo in enumerate([True, True, True, False, False]):
        c.order("promo_60", ago(10 * (i + 1)), 300, item="SKN01", promo=promo)
    c.member("promo_two")
    for days in (10, 20):
        c.order("promo_two", ago(days), 300, item="SKN01", promo=True)
    c.member("promo_third")  # 1 of 3 in the year; the old promotions do not count
    for days, promo in ((10, True), (20, False), (30, False), (400, True), (401, True)):
        c.order("promo_third", ago(days), 300, item="SKN01", promo=promo)
    return {"promo_60": T}


def vip_regular(c: Clinic) -> Expected:
    c.member("vip_three_days")
    for days in (10, 100, 200):
        c.order("vip_three_days", ago(days), 3800, item="HA01")
    c.member("vip_same_day")
    for hour in (9, 10, 11):
        c.order("vip_same_day", ago(10, hour=hour), 3800, item="HA01")
    c.order("vip_same_day", ago(50), 3800, item="HA01")
    c.member("vip_products")  # luxury skincare is a product, not a high-end service
    for days in (10, 20, 30):
        c.order("vip_products", ago(days), 5000, item="LUXP")
    c.member("vip_old")
    for days in (10, 20, 366):
        c.order("vip_old", ago(days), 3800, item="HA01")
    return {"vip_three_days": T}


def high_engagement(c: Clinic) -> Expected:
    c.member("hi_two_channels")
    for days in (1, 2, 3):
        c.interaction("hi_two_channels", ago(days))
    for days in (89, 90):
        c.interaction("hi_two_channels", ago(days, hour=0), channel="douyin")
    c.member("hi_one_channel")
    for days in range(1, 7):
        c.interaction("hi_one_channel", ago(days))
    c.member("hi_old")
    for days in (1, 2, 3):
        c.interaction("hi_old", ago(days))
    c.interaction("hi_old", ago(5), channel="douyin")
    c.interaction("hi_old", ago(91, hour=23), channel="douyin")
    return {"hi_two_channels": T}


def low_engagement(c: Clinic) -> Expected:
    c.member("lo_none")
    c.interaction(c.member("lo_one"), ago(10))
    c.member("lo_two")
    c.interaction("lo_two", ago(10))
    c.interaction("lo_two", ago(90, hour=0), channel="call_center", type_="call")
    c.interaction(c.member("lo_once_lately"), ago(10))
    for days in (91, 120, 200):
        c.interaction("lo_once_lately", ago(days))
    return {"lo_none": T, "lo_one": T, "lo_once_lately": T}


def category_preferences(c: Clinic) -> dict[str, Expected]:
    """One scenario for the three category preferences (orders, treatments and interaction
    topics, by count, last 365 days, >= 3 rows, >= 40%, no tie, products left out)."""
    c.order(c.member("pref_injection"), ago(30), 3800, item="HA01")
    c.treatment("pref_injection", ago(29), item="HA01")
    c.treatment("pref_injection", ago(10), item="HA01")
    c.order("pref_injection", ago(50), 800, item="IPL01")
    c.order(c.member("pref_energy"), ago(100), 15000, item="THM01")
    c.order("pref_energy", ago(200), 15000, item="THM01")
    c.interaction("pref_energy", ago(5), topic="热玛吉")
    c.order(c.member("pref_surgery"), ago(60), 12000, item="SUR01")
    c.treatment("pref_surgery", ago(59), item="SUR01")
    c.interaction("pref_surgery", ago(70), topic="双眼皮手术")
    c.member("pref_tie")
    for item, days in (("HA01", 30), ("IPL01", 20)):
        c.order("pref_tie", ago(days), 1000, item=item)
        c.treatment("pref_tie", ago(days - 1), item=item)
    c.member("pref_few")
    for days in (10, 20):
        c.order("pref_few", ago(days), 3800, item="HA01")
    c.member("pref_products")  # three 产品 orders and one injection: too few treatments
    for days in (10, 20, 30):
        c.order("pref_products", ago(days), 200, item="PRD01")
    c.order("pref_products", ago(40), 3800, item="HA01")
    c.member("pref_forty")  # 注射 2 of 5: exactly 40%
    for item in ("HA01", "BTX01", "IPL01", "SKN01", "SUR01"):
        c.order("pref_forty", ago(15), 1000, item=item)
    c.member("pref_below")  # 注射 3 of 8 = 37.5%
    for item in ("HA01", "HA01", "HA01", "IPL01", "IPL01", "SUR01", "SUR01", "SKN01"):
        c.order("pref_below", ago(15), 1000, item=item)
    c.member("pref_old")
    for days in (400, 410, 420):
        c.order("pref_old", ago(days), 3800, item="HA01")
    return {
        "prefers_injection": {"pref_injection": T, "pref_forty": T},
        "prefers_energy_device": {"pref_energy": T},
        "prefers_surgery": {"pref_surgery": T},
    }


def interest_category(c: Clinic) -> Expected:
    c.member("int_energy")
    for topic, days in (("热玛吉", 10), ("热玛吉", 20), ("玻尿酸填充", 30)):
        c.interaction("int_energy", ago(days), topic=topic)
    c.member("int_tie")
    for topic in ("热玛吉", "玻尿酸填充"):
        c.interaction("int_tie", ago(10), topic=topic)
    c.member("int_old")
    for topic, days in (("热玛吉", 181), ("热玛吉", 200), ("玻尿酸填充", 10)):
        c.interaction("int_old", ago(days), topic=topic)
    c.member("int_unknown_topic")
    for days in (1, 2, 3):
        c.interaction("int_unknown_topic", ago(days), topic="价格咨询")
    return {"int_energy": "光电"}


def unused_course_card(c: Clinic) -> Expected:
    c.order(
        c.member("card_left"), ago(100), 4000, item="IPL01", order_type="course_card", sessions=5
    )
    for days in (90, 60):
        c.treatment("card_left", ago(days), item="IPL01")
    c.order(
        c.member("card_used"), ago(100), 1600, item="IPL01", order_type="course_card", sessions=2
    )
    for days in (90, 60):
        c.treatment("card_used", ago(days), item="IPL01")
    c.order(
        c.member("card_before"), ago(100), 300, item="SKN01", order_type="course_card", sessions=1
    )
    c.treatment("card_before", ago(150), item="SKN01")  # before the card: not from it
    c.order(
        c.member("card_refunded"),
        ago(100),
        4000,
        item="IPL01",
        order_type="course_card",
        sessions=5,
        status="refunded",
    )
    c.member("card_none")
    return {"card_left": T, "card_before": T}


def frequent_no_show(c: Clinic) -> Expected:
    c.member("ns_two")
    for days in (10, 365):
        c.appointment("ns_two", ago(days, hour=0), "no_show")
    c.member("ns_old")
    for days in (10, 366):
        c.appointment("ns_old", ago(days, hour=23), "no_show")
    c.member("ns_arrived")
    for days in (10, 20, 30):
        c.appointment("ns_arrived", ago(days))
    c.appointment("ns_arrived", ago(40), "cancelled")
    return {"ns_two": T}


def birthday_this_month(c: Clinic) -> Expected:
    c.member("bd_june", birthday=date(1990, 6, 15))
    c.member("bd_june_first", birthday=date(1985, 6, 1))
    c.member("bd_may", birthday=date(1990, 5, 31))
    c.member("bd_july", birthday=date(1990, 7, 1))
    c.member("bd_unknown", birthday=None)
    return {"bd_june": T, "bd_june_first": T}


def dormant(c: Clinic) -> Expected:
    c.order(c.member("dm_order_181"), ago(181, hour=23), 500)
    c.appointment(c.member("dm_visit_180"), ago(180, hour=0))
    c.member("dm_never")
    c.appointment(c.member("dm_no_show_only"), ago(300), "no_show")
    c.appointment(c.member("dm_visit_and_order"), ago(200))
    c.order("dm_visit_and_order", ago(181), 500)
    c.order(c.member("dm_recent_order"), ago(400), 500)
    c.order("dm_recent_order", ago(100), 500)
    c.order(c.member("dm_refund_lately"), ago(200), 500)
    c.order("dm_refund_lately", ago(10), 500, status="refunded")
    c.appointment("dm_refund_lately", ago(20), "no_show")
    return {"dm_order_181": T, "dm_visit_and_order": T, "dm_refund_lately": T}


def visits_365d(c: Clinic) -> Expected:
    c.member("vis_two")
    for days in (1, 365):
        c.appointment("vis_two", ago(days, hour=0))
    c.appointment("vis_two", ago(366, hour=23))
    c.appointment("vis_two", ago(2), "no_show")
    c.member("vis_none")
    return {"vis_two": "2", "vis_none": "0"}


SCENARIOS: dict[str, Callable[[Clinic], Expected]] = {
    "new_customer": new_customer,
    "frequent_visitor": frequent_visitor,
    "luxury_lover": luxury_lover,
    "promotion_driven": promotion_driven,
    "vip_regular": vip_regular,
    "high_engagement": high_engagement,
    "low_engagement": low_engagement,
    "interest_category": interest_category,
    "unused_course_card": unused_course_card,
    "frequent_no_show": frequent_no_show,
    "birthday_this_month": birthday_this_month,
    "dormant": dormant,
    "visits_365d": visits_365d,
}
PREFERENCE_TAGS = ("prefers_injection", "prefers_energy_device", "prefers_surgery")


def build_world(clinic: Clinic) -> dict[str, tuple[set[str], Expected]]:
    """Every scenario in one clinic: tag_id -> (the scenario's members, expected rows)."""
    world: dict[str, tuple[set[str], Expected]] = {}
    known: set[str] = set()

    def members_added() -> set[str]:
        rows = clinic.con.execute("SELECT one_id FROM profiles").fetchall()
        added = {str(r[0]) for r in rows} - known
        known.update(added)
        return added

    for tag_id, scenario in SCENARIOS.items():
        expected = scenario(clinic)
        world[tag_id] = (members_added(), expected)
    preferences = category_preferences(clinic)
    members = members_added()
    for tag_id in PREFERENCE_TAGS:
        world[tag_id] = (members, preferences[tag_id])
    return world


@pytest.fixture(scope="module")
def world() -> tuple[dict[str, dict[str, str]], dict[str, tuple[set[str], Expected]]]:
    clinic = Clinic()
    expectations = build_world(clinic)
    rows = tag_rows(clinic.engine(), tags.load_definitions(None))
    return rows, expectations


@pytest.mark.parametrize("tag_id", [*SCENARIOS, *PREFERENCE_TAGS])
def test_starter_tag_holds_exactly_for_the_expected_members(
    tag_id: str,
    world: tuple[dict[str, dict[str, str]], dict[str, tuple[set[str], Expected]]],
) -> None:
    rows, expectations = world
    members, expected = expectations[tag_id]
    got = {one_id: v for one_id, v in rows.get(tag_id, {}).items() if one_id in members}
    assert got == expected


def test_every_member_gets_a_visit_count_and_nothing_else_is_a_number(
    world: tuple[dict[str, dict[str, str]], dict[str, tuple[set[str], Expected]]],
) -> None:
    rows, expectations = world
    everyone = set().union(*(members for members, _ in expectations.values()))
    assert set(rows["visits_365d"]) == everyone
    assert rows["visits_365d"]["fv_four"] == "4"
    booleans = [t for t in rows if t not in ("visits_365d", "interest_category")]
    assert {v for t in booleans for v in rows[t].values()} == {"true"}


def test_the_catalogue_has_the_issue_tags_with_names_owner_and_refresh() -> None:
    found = {d.tag_id: d for d in tags.load_definitions(None)}
    required = {
        "new_customer": "新客",
        "frequent_visitor": "高频到店用户",
        "luxury_lover": "奢侈品偏好者",
        "promotion_driven": "促销驱动型",
        "vip_regular": "VIP 高端服务常客",
        "high_engagement": "高互动",
        "low_engagement": "低互动",
        "prefers_injection": "注射类偏好",
        "prefers_energy_device": "光电类偏好",
        "prefers_surgery": "手术类偏好",
        "unused_course_card": "疗程卡未用完",
        "frequent_no_show": "爽约多次",
        "birthday_this_month": "生日当月",
        "dormant": "沉睡",
    }
    for tag_id, name_zh in required.items():
        d = found[tag_id]
        assert (d.name_zh, d.enabled) == (name_zh, True)
        assert d.name_en and d.description and d.owner and d.category
    assert {d.refresh for d in found.values()} == {"event", "scheduled"}


def test_fact_columns_are_the_columns_of_the_member_facts() -> None:
    engine = Clinic().engine()
    for fact, columns in FACT_COLUMNS.items():
        if fact != "course_cards":
            assert engine.columns(f"cm_{fact}") == list(columns), fact


# --- rule kinds and formats -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> DuckDBEngine:
    """Three members: a, b (orders, visits, a course card) and c (nothing)."""
    c = Clinic()
    c.member("a", birthday=date(1990, 6, 2), first_order_at=ago(30))
    c.member("b", gender="M", city=None, first_order_at=AS_OF + timedelta(days=3))
    c.member("c", city="杭州")
    c.order("a", ago(10), 100, item="SKN01", promo=True)
    c.order("a", ago(20), 200, item="HA01")
    c.order("a", ago(30), 200, item="HA01")
    c.order("b", ago(5), 12345, item="IPL01", order_type="course_card", sessions=3)
    c.treatment("b", ago(4), item="IPL01")
    c.appointment("b", ago(4))
    c.appointment("b", ago(100))
    c.event("c", ago(1))
    return c.engine()


def _one(
    engine: DuckDBEngine, rule: dict[str, object], value_type: str = "boolean"
) -> dict[str, str]:
    return tag_rows(engine, [definition(rule, value_type)]).get("t", {})


def orders_rule(**fields: object) -> dict[str, object]:
    return {"kind": "aggregate", "fact": "orders", **fields}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (orders_rule(measure="avg:paid_fen"), {"a": "16666.6667", "b": "1234500"}),
        (orders_rule(measure="sum:paid_fen", window_days=20),
         {"a": "30000", "b": "1234500", "c": "0"}),
        (orders_rule(measure="count", where=[{"column": "promo", "op": "eq", "value": True}]),
         {"a": "1", "b": "0", "c": "0"}),
        (orders_rule(measure="days_since_last"), {"a": "10", "b": "5"}),
        (orders_rule(measure="count_distinct:item_code"), {"a": "2", "b": "1", "c": "0"}),
        ({"kind": "share", "where": [{"column": "promo", "op": "eq", "value": True}]},
         {"a": "0.3333"}),
        ({"kind": "share", "of": "spend", "min_count": 1,
          "where": [{"column": "item_code", "op": "eq", "value": "HA01"}]}, {"a": "0.8", "b": "0"}),
        ({"kind": "aggregate", "fact": "course_cards", "measure": "sum:sessions_left"},
         {"a": "0", "b": "2", "c": "0"}),
    ],
)  # fmt: skip
def test_number_tags_are_plain_text_without_trailing_zeros(
    small: DuckDBEngine, rule: dict[str, object], expected: dict[str, str]
) -> None:
    assert _one(small, rule, "number") == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"column": "gender", "op": "eq", "value": "M"}, {"b"}),
        ({"column": "city", "op": "ne", "value": "杭州"}, {"a", "b"}),  # NULL city counts as ne
        ({"column": "city", "op": "in", "value": ["杭州", "北京"]}, {"c"}),
        ({"column": "city", "op": "not_in", "value": ["上海"]}, {"b", "c"}),
        ({"column": "city", "op": "is_null"}, {"b"}),
        ({"column": "birthday", "op": "between", "value": ["1990-01-01", "1990-12-31"]}, {"a"}),
        ({"column": "first_order_at", "op": "gt", "value": "2025-06-01T00:00:00"}, {"b"}),
        ({"helper": "days_since", "column": "first_order_at", "op": "lte", "value": 30}, {"a"}),
        ({"helper": "days_since", "column": "first_order_at", "op": "lt", "value": 30}, set()),
        ({"helper": "birthday_month_is_current"}, {"a"}),
    ],
)
def test_trait_conditions(
    small: DuckDBEngine, condition: dict[str, object], expected: set[str]
) -> None:
    assert set(_one(small, {"kind": "trait", "conditions": [condition]})) == expected


def test_combinators_treat_missing_data_as_false(small: DuckDBEngine) -> None:
    has_order = orders_rule(measure="count", op="gte", value=1)
    high_avg = orders_rule(measure="avg:paid_fen", op="gt", value=100000)  # NULL for c
    assert set(_one(small, {"kind": "not", "rule": has_order})) == {"c"}
    assert set(_one(small, {"kind": "not", "rule": high_avg})) == {"a", "c"}
    assert set(_one(small, {"kind": "any", "rules": [has_order, high_avg]})) == {"a", "b"}
    assert set(_one(small, {"kind": "all", "rules": [has_order, high_avg]})) == {"b"}
    between = orders_rule(measure="count", op="between", value=[2, 3])
    assert set(_one(small, between)) == {"a"}


def test_enum_preference_by_spend_and_disabled_tags_are_skipped(small: DuckDBEngine) -> None:
    by_spend = {
        "kind": "preference",
        "by": "spend",
        "sources": [{"fact": "orders", "column": "category"}],
    }
    assert _one(small, by_spend, "enum") == {"a": "注射", "b": "光电"}
    off = definition(by_spend, "enum", enabled=False)
    assert tag_rows(small, [off]) == {}


def test_scope_limits_the_members(small: DuckDBEngine) -> None:
    small.con.execute("CREATE OR REPLACE TEMP TABLE scope_people AS SELECT 'a' AS one_id")
    rule = orders_rule(measure="count")
    rows = tag_rows(small, [definition(rule, "number")], scope="scope_people")
    assert rows == {"t": {"a": "3"}}


def test_preview_counts_and_samples_without_saving(small: DuckDBEngine) -> None:
    rule = orders_rule(measure="count", op="gte", value=1)
    found = tags.preview(small, definition(rule), AS_OF, sample=1)
    assert (found.count, found.sample_one_ids, found.value_counts) == (2, ["a"], {})
    enum = {"kind": "preference", "sources": [{"fact": "orders", "column": "category"}]}
    found = tags.preview(small.con, definition(enum, "enum"), AS_OF)
    assert found.count == 2 and found.value_counts == {"注射": 1, "光电": 1}
    assert found.sample_one_ids == ["a", "b"] and found.sample_values == ["注射", "光电"]
    tables = small.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'tg_%'"
    )
    assert tables.fetchall() == []


def test_days_are_calendar_days_in_china() -> None:
    """The 90-day window of a run on 2025-06-30 (China) starts at 2025-04-01 00:00 in China,
    2025-03-31 16:00 UTC; a run at 20:00 UTC on June 30 is already July 1 in China."""
    c = Clinic()
    c.appointment(c.member("inside"), datetime(2025, 3, 31, 16, 30))
    c.appointment(c.member("outside"), datetime(2025, 3, 31, 15, 30))
    c.member("july", birthday=date(1990, 7, 20))
    c.member("june", birthday=date(1990, 6, 20))
    visits = {"kind": "aggregate", "fact": "appointments", "window_days": 90, "measure": "count"}
    assert _one(c.engine(), visits, "number") == {
        "inside": "1",
        "outside": "0",
        "july": "0",
        "june": "0",
    }
    quiet = {"kind": "aggregate", "fact": "appointments", "measure": "days_since_last"}
    assert _one(c.engine(), quiet, "number") == {"inside": "90", "outside": "91"}
    birthday = {"kind": "trait", "conditions": [{"helper": "birthday_month_is_current"}]}
    late = datetime(2025, 6, 30, 20, 0)
    rows = tag_rows(c.engine(late), [definition(birthday)], late)
    assert rows == {"t": {"july": "true"}}

"""Treatment cycles: where each item's cycle comes from, course cards, due status."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from compute.tiers_factory import Facts

from mecdp.compute import cycles
from mecdp.compute.config import LayeringConfig, merge
from mecdp.errors import InputError

AS_OF = datetime(2025, 1, 1, 12, 0)
TODAY = AS_OF.date()


def day(days_before: int, at: str = "10:00") -> str:
    return f"{(TODAY - timedelta(days=days_before)).isoformat()} {at}"


def config(**cycle_rules: Any) -> LayeringConfig:
    base = LayeringConfig.load().model_dump(mode="json")
    return LayeringConfig.from_dict(merge(base, {"cycles": cycle_rules}))


def compute(f: Facts, cfg: LayeringConfig | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    engine = f.engine(AS_OF)
    engine.run_pipeline(cycles.cycle_steps(cfg or LayeringConfig.load(), AS_OF), cycles.OUTPUT)
    out = engine.fetch_arrow(f"SELECT * FROM {cycles.OUTPUT}").to_pylist()
    return {(r["one_id"], r["item_code"]): r for r in out}


def test_cycle_comes_from_item_then_name_then_catalog_then_category() -> None:
    f = Facts()
    f.member("m")
    f.treatment("m", day(10), "INJ001")  # item override (pattern 玻尿酸 and catalog say 270)
    f.treatment("m", day(10), "BTX9", item_name="肉毒素(进口)")  # not in the catalog: pattern
    f.treatment("m", day(10), "LAS003")  # pattern IPL 180 beats the catalog's 25
    f.treatment("m", day(10), "SKN001")  # catalog 21, no pattern
    f.treatment("m", day(10), "SKN009")  # no catalog cycle: 皮肤管理 default 28
    f.treatment("m", day(10), "SUR001")  # surgery: no cycle anywhere -> no row
    f.treatment("m", day(10), "XYZ001")  # unknown category -> no row
    f.treatment("m", day(10), None, item_name="玻尿酸")  # no item code -> no row
    got = compute(f, config(items={"INJ001": {"cycle_days": 100}}))
    assert {k[1]: v["cycle_days"] for k, v in got.items()} == {
        "INJ001": 100,
        "BTX9": 150,
        "LAS003": 180,
        "SKN001": 21,
        "SKN009": 28,
    }
    assert got["m", "BTX9"]["item_name"] == "肉毒素(进口)"
    assert got["m", "SKN009"]["category"] == "皮肤管理"
    assert got["m", "SKN001"]["due_on"] == TODAY - timedelta(days=10) + timedelta(days=21)


def test_status_at_the_exact_boundaries() -> None:
    f = Facts()
    for one_id in ("due_today", "due_yesterday", "last_upcoming", "first_not_due", "china_day"):
        f.member(one_id)
    f.treatment("due_today", day(21), "SKN001")  # 21-day cycle: due today -> upcoming
    f.treatment("due_yesterday", day(22), "SKN001")
    f.treatment("last_upcoming", day(120), "INJ002")  # 150 days: due in 30 days
    f.treatment("first_not_due", day(119), "INJ002")  # due in 31 days
    # 23:59 UTC is 07:59 the next morning in China: the day in China counts
    f.treatment("china_day", day(22, "23:59:59"), "SKN001")
    got = {k[0]: (v["due_on"], v["status"]) for k, v in compute(f).items()}
    assert got == {
        "due_today": (TODAY, "upcoming"),
        "due_yesterday": (TODAY - timedelta(days=1), "overdue"),
        "last_upcoming": (TODAY + timedelta(days=30), "upcoming"),
        "first_not_due": (TODAY + timedelta(days=31), "not_due"),
        "china_day": (TODAY, "upcoming"),
    }


def test_latest_treatment_counts_and_later_ones_are_not_known_yet() -> None:
    f = Facts()
    f.member("m")
    f.treatment("m", day(100), "SKN001")
    f.treatment("m", day(5), "SKN001")
    f.treatment("m", (AS_OF + timedelta(hours=1)).isoformat(sep=" "), "SKN001")  # after as_of
    row = compute(f)["m", "SKN001"]
    assert row["last_performed_at"] == datetime.fromisoformat(day(5))
    assert (row["due_on"], row["status"]) == (TODAY + timedelta(days=16), "upcoming")


def test_course_card_with_sessions_left_uses_the_course_interval() -> None:
    f = Facts()
    for one_id in ("in_course", "course_done", "treated_before_card"):
        f.member(one_id)
    f.order("in_course", day(60), 2640, item="LAS003", order_type="course_card", sessions=3)
    f.treatment("in_course", day(56), "LAS003")
    f.treatment("in_course", day(30), "LAS003")  # 2 of 3 used
    f.order("course_done", day(60), 1760, item="LAS003", order_type="course_card", sessions=2)
    f.treatment("course_done", day(56), "LAS003")
    f.treatment("course_done", day(30), "LAS003")  # all used: back to the 180-day cycle
    f.order(
        "treated_before_card", day(40), 880, item="LAS003", order_type="course_card", sessions=1
    )
    f.treatment("treated_before_card", day(50), "LAS003")  # before the card: not a session
    got = {k[0]: (v["cycle_days"], v["due_on"], v["status"]) for k, v in compute(f).items()}
    assert got == {
        "in_course": (28, TODAY - timedelta(days=2), "overdue"),
        "course_done": (180, TODAY + timedelta(days=150), "not_due"),
        "treated_before_card": (28, TODAY - timedelta(days=22), "overdue"),
    }
    # an item override without a course interval keeps its cycle during a course
    override = compute(f, config(items={"LAS003": {"cycle_days": 60}}))
    assert override["in_course", "LAS003"]["cycle_days"] == 60


def test_upcoming_window_is_configurable() -> None:
    f = Facts()
    f.member("m")
    f.treatment("m", day(120), "INJ002")  # due in 30 days
    assert compute(f, config(upcoming_days=29))["m", "INJ002"]["status"] == "not_due"


def test_workspace_file_overrides_the_shipped_rules(tmp_path: Path) -> None:
    (tmp_path / "layering.yaml").write_text(
        "cycles:\n  upcoming_days: 7\n  items:\n    INJ001: {cycle_days: 200}\n"
        "rfm:\n  tier_of_segment:\n    general_keep: potential\n",
        encoding="utf-8",
    )
    cfg = LayeringConfig.load(tmp_path)
    assert cfg.cycles.upcoming_days == 7
    assert cfg.cycles.items["INJ001"].cycle_days == 200
    assert cfg.cycles.name_patterns == LayeringConfig.load().cycles.name_patterns  # kept
    assert cfg.rfm.tier_of_segment["general_keep"] == "potential"
    assert cfg.rfm.tier_of_segment["important_value"] == "high_value"  # merged key by key

    (tmp_path / "layering.yaml").write_text("cycles:\n  upcoming_dayz: 7\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"layering\.yaml: cycles\.upcoming_dayz"):
        LayeringConfig.load(tmp_path)


def test_bad_cycle_rules_name_the_field() -> None:
    with pytest.raises(InputError, match=r"cycles\.name_patterns\.0\.pattern"):
        config(name_patterns=[{"pattern": "50%", "cycle_days": 10}])
    with pytest.raises(InputError, match=r"cycles\.items\.X\.cycle_days"):
        config(items={"X": {"cycle_days": 0}})

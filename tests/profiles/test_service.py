"""Golden record, refresh with trait history, 360° view, timeline paging, search, masking."""

from __future__ import annotations

from datetime import datetime

import pytest
from profiles.conftest import PHONE
from profiles.factories import Chain, profile_row

from mecdp.config import Settings
from mecdp.errors import InputError, NotFound
from mecdp.privacy import consent
from mecdp.profiles import service
from mecdp.profiles.config import ProfileRules
from mecdp.store import Store


def test_survivorship_picks_per_rule_and_keeps_the_source(store: Store, member: str) -> None:
    p = profile_row(store, member)
    # source priority: the member master beats a newer call-centre note and lead form
    assert p["name"] == "张小雅"
    # HIS/member master over the lead form's (day/month swapped) birthday
    assert str(p["birthday"]) == "1990-05-01"
    # most recent: the lead form's city is the newest
    assert p["city"] == "杭州"
    traits = {t["trait"]: t for t in service.traits(store.cursor(), _settings(), member)}
    assert traits["name"]["source_id"] == "crm_members"
    assert traits["name"]["candidates"] == 3
    assert traits["city"]["source_id"] == "douyin_leads"
    assert traits["birthday"]["rule"] == "source_priority"


def test_derived_basics(store: Store, member: str) -> None:
    p = profile_row(store, member)
    assert p["orders"] == 3
    assert p["total_spend_fen"] == 1_580_000  # the refunded order brings nothing
    assert p["avg_spend_fen"] == 526_667
    assert p["visits"] == 2  # arrived only
    assert p["home_store"] == "SH01"
    assert p["consultant"] == "刘顾问"  # latest arrived visit, not the no-show
    assert p["member_level"] == "gold"
    assert p["first_order_at"] == datetime(2024, 4, 1, 10)
    assert p["first_seen"] == datetime(2024, 3, 1, 10)
    assert p["last_seen"] == datetime(2025, 2, 1, 10)
    cards = service.course_cards(store.cursor(), member)
    assert [(c["sessions_bought"], c["sessions_used"], c["sessions_left"]) for c in cards] == [
        (5, 1, 4)
    ]


def test_refresh_records_trait_changes(store: Store, member: str) -> None:
    chain = Chain(store, _n=100)
    chain.person("his", "2025-03-01 10:00:00", kind="appointments", city="苏州", phone=PHONE)
    chain.resolve()
    with store.transaction() as cur:
        report = service.refresh_profiles(cur, [member])
    assert report.persons == 1 and report.trait_changes == 1
    history = service.trait_history(store.cursor(), _settings(), member)
    assert [h["value"] for h in history if h["trait"] == "city"] == ["杭州", "苏州"]
    again = service.build_profiles(store)
    assert again.trait_changes == 0


def test_rules_are_configurable(store: Store, member: str) -> None:
    rules = ProfileRules.from_dict(
        {
            "traits": {"name": {"rule": "most_recent"}},
            "levels": [{"level": "vip", "min_spend_fen": 1}],
        }
    )
    service.build_profiles(store, rules=rules)
    p = profile_row(store, member)
    assert (p["name"], p["member_level"]) == ("张小雅呀", "vip")
    with pytest.raises(InputError, match="survivorship rule"):
        ProfileRules.from_dict({"traits": {"name": {"rule": "loudest"}}})


def test_view_masks_and_finds_by_any_identifier(
    store: Store, member: str, settings: Settings
) -> None:
    cur = store.cursor()
    assert service.find_person(cur, settings, "phone:139 7123 4586") == member
    assert service.find_person(cur, settings, "member_no:M0001") == member
    assert service.find_person(cur, settings, member) == member
    with pytest.raises(NotFound):
        service.find_person(cur, settings, "phone:13900000001")
    view = service.profile_view(cur, settings, member, timeline_size=5)
    assert view["identity"]["phone"] == PHONE
    masked = service.mask_view(view, frozenset())
    assert masked["identity"]["phone"] == "139****4586"
    assert masked["identity"]["name"] == "张**"
    assert masked["identifiers"]["member_no"][0]["value"] == "M***1"
    assert masked["masked"] is True
    plain = service.mask_view(view, frozenset({"name", "phone", "email", "identifier"}))
    assert plain["identity"]["phone"] == PHONE and plain["masked"] is False


def test_timeline_pages_filters_and_hides_treatments_without_consent(
    store: Store, member: str
) -> None:
    cur = store.cursor()
    seen: list[str] = []
    cursor = None
    while True:
        page = service.timeline_page(cur, member, cursor=cursor, size=3, medical=True)
        seen += [i["record_id"] for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 9  # 11 facts minus 2 treatments
    orders = service.timeline_page(cur, member, kinds=["order"], size=50)
    assert {i["kind"] for i in orders.items} == {"order"} and len(orders.items) == 3
    his = service.timeline_page(cur, member, channels=["his"], size=50)
    assert {i["kind"] for i in his.items} == {"appointment"}
    consent.record_consent(
        cur,
        recorded_by="test",
        member_ref=service.member_ref(member),
        purpose="sensitive_medical_processing",
        status="granted",
        notice_version="v1",
        notice_text="我同意处理我的医疗信息",
        source="in_store_form",
        evidence="form-1",
    )
    with_medical = service.timeline_page(cur, member, size=50, medical=True)
    assert with_medical.sensitive_included
    assert sum(i["kind"] == "treatment" for i in with_medical.items) == 2
    without_role = service.timeline_page(cur, member, size=50, medical=False)
    assert not any(i["kind"] == "treatment" for i in without_role.items)
    with pytest.raises(InputError):
        service.timeline_page(cur, member, cursor="bogus!")
    with pytest.raises(InputError):
        service.timeline_page(cur, member, kinds=["gossip"])


def test_search(store: Store, member: str, settings: Settings) -> None:
    cur = store.cursor()
    for query, by in (("13971234586", "auto"), ("张小雅", "auto"), ("M0001", "member_no")):
        hits = service.search_members(cur, settings, query, field=by)
        assert [h.one_id for h in hits] == [member], query
    assert service.search_members(cur, settings, "王五") == []
    hit = service.mask_hit(service.search_members(cur, settings, "13971234586")[0], frozenset())
    assert hit["phone"] == "139****4586" and hit["name"] == "张**"


def _settings() -> Settings:
    return Settings()

"""The profile lookup: precomputed documents kept current by the build and refresh (and equal
to the table-by-table reads), live consents, tags, scores and treatment due dates, and one
statement whose every table read is an index scan."""

from __future__ import annotations

import json

import pytest
from profiles.conftest import PHONE
from profiles.factories import Chain, one_id_of, seed_layering

from mecdp.config import Settings
from mecdp.errors import NotFound
from mecdp.privacy import consent
from mecdp.profiles import lookup, service
from mecdp.store import Store


def _consent(store: Store, one_id: str, purpose: str, status: str, when: str) -> None:
    consent.record_consent(
        store.cursor(),
        recorded_by="test",
        member_ref=service.member_ref(one_id),
        purpose=purpose,
        status=status,
        notice_version="v1",
        notice_text="隐私政策 v1",
        source="in_store_form",
        evidence="form-1",
        occurred_at=when,
    )


def _document_count(store: Store) -> int:
    row = store.cursor().execute("SELECT count(*) FROM profile_documents").fetchone()
    return int(row[0]) if row else 0


def test_the_document_reads_as_the_profile_tables(
    store: Store, member: str, settings: Settings
) -> None:
    cur = store.cursor()
    view = service.profile_view(cur, settings, member)
    golden = service.get_profile(cur, settings, member)
    assert view["summary"] == {k: golden[k] for k in view["summary"]}
    assert view["summary"]["built_at"] == golden["built_at"]  # microseconds kept
    assert view["identity"]["name"] == golden["name"] == "张小雅"
    assert (view["identity"]["birthday"], view["identity"]["city"]) == ("1990-05-01", "杭州")
    assert view["identity"]["phone"] == PHONE
    assert view["traits"] == service.traits(cur, settings, member)
    assert view["identifiers"] == service.identifiers(cur, settings, member)
    assert view["course_cards"] == service.course_cards(cur, member)
    # a person built before the documents existed is read from the profile tables
    cur.execute("DELETE FROM profile_documents")
    assert service.profile_view(cur, settings, member) == view


def test_refresh_keeps_documents_current_and_merges_drop_the_merged_away_ones(
    store: Store, member: str, settings: Settings
) -> None:
    chain = Chain(store, _n=100)
    other = chain.person("crm_members", "2024-06-01 10:00:00", name="李娜", phone="+8613900000002")
    chain.resolve()
    service.build_profiles(store)
    other_id = one_id_of(store, other)
    assert _document_count(store) == 2
    # a new record joins the two persons (the other's phone, this member's number) and moves
    chain.person(
        "his",
        "2025-03-01 10:00:00",
        kind="appointments",
        city="苏州",
        phone="+8613900000002",
        member_no="M0001",
    )
    chain.resolve()
    assert one_id_of(store, other) == member  # the older one_id survives
    with store.transaction() as cur:
        service.refresh_profiles(cur, [member, other_id])
    cur = store.cursor()
    assert _document_count(store) == 1
    view = service.profile_view(cur, settings, member)
    assert view["identity"]["city"] == "苏州"
    assert view["merged_from"] == [other_id]
    assert view["identifiers"] == service.identifiers(cur, settings, member)
    assert len(view["identifiers"]["phone"]) == 2
    # a lookup by the merged-away one_id or by either phone finds the survivor's view
    for ref in (other_id, member, "phone:139 0000 0002", f"phone:{PHONE}"):
        assert service.view_by_ref(cur, settings, ref) == view, ref
    with pytest.raises(NotFound):
        service.view_by_ref(cur, settings, "OID99999999")


def test_consent_changes_show_on_the_next_read(
    store: Store, member: str, settings: Settings
) -> None:
    cur = store.cursor()
    assert service.profile_view(cur, settings, member)["consents"] == []
    _consent(store, member, "marketing_sms", "granted", "2025-01-01T10:00:00+08:00")
    _consent(store, member, "wechat_push", "granted", "2025-01-02T10:00:00.25+08:00")
    _consent(store, member, "marketing_sms", "withdrawn", "2025-02-01T10:00:00+08:00")
    consents = service.profile_view(cur, settings, member)["consents"]
    assert [(c["purpose"], c["status"]) for c in consents] == [
        ("marketing_sms", "withdrawn"),
        ("wechat_push", "granted"),
    ]
    # the same answer, to the letter, as the consent ledger's own current state
    expected = consent.current_consents(cur, service.member_ref(member))
    assert consents == [c.to_dict() for c in expected]


def test_tags_scores_and_due_dates_in_the_view(
    store: Store, member: str, settings: Settings
) -> None:
    cur = store.cursor()
    before = service.profile_view(cur, settings, member, medical=True)
    assert (before["tags"], before["scores"], before["treatment_due"]) == ([], None, None)
    seed_layering(store, member)
    view = service.profile_view(cur, settings, member)
    assert view["tags"] == [
        {
            "tag_id": "dormant",
            "name_zh": "沉睡",
            "name_en": "Dormant",
            "category": "lifecycle",
            "value_type": "boolean",
            "value": "true",
            "since": "2025-05-01T02:00:00Z",
        },
        {
            "tag_id": "value_tier",
            "name_zh": "价值分层",
            "name_en": "Value tier",
            "category": "value",
            "value_type": "enum",
            "value": "high_value",
            "since": "2025-06-01T02:00:00.500000Z",
        },
    ]
    scores = view["scores"]
    assert scores["as_of"] == "2025-06-01T00:00:00Z"
    assert (scores["recency_days"], scores["frequency"], scores["monetary_fen"]) == (
        395,
        3,
        1_580_000,
    )
    assert (scores["r_score"], scores["f_score"], scores["m_score"]) == (1, 3, 5)
    assert (scores["rfm_segment"], scores["value_tier"]) == ("important_retain", "high_value")
    assert (scores["p_alive"], scores["expected_purchases_365"]) == (0.42, 0.4)
    assert scores["clv_12m_fen"] == 260000.25
    assert (scores["purchase_tier"], scores["interaction_tier"]) == ("course", "low")
    assert scores["preferred_category"] == "注射"
    # treatment due dates are sensitive medical data: not without a role that may see them,
    assert view["treatment_due"] is None
    # nor for such a role without the member's separate consent; nor the tags derived from
    # treatments (已过期), which are medical data too
    no_consent = service.profile_view(cur, settings, member, medical=True)
    assert no_consent["treatment_due"] is None
    assert no_consent["tags"] == view["tags"]
    _consent(store, member, "sensitive_medical_processing", "granted", "2025-01-01T10:00:00Z")
    medical = service.profile_view(cur, settings, member, medical=True)
    assert [t["tag_id"] for t in medical["tags"]] == ["dormant", "treatment_overdue", "value_tier"]
    due = medical["treatment_due"]
    assert due == [
        {
            "item_code": "HA01",
            "item_name": "玻尿酸填充",
            "category": "注射",
            "last_performed_at": "2024-04-10T11:00:00Z",
            "cycle_days": 270,
            "due_on": "2025-01-05",
            "status": "overdue",
        },
        {
            "item_code": "BTX01",
            "item_name": "肉毒素除皱",
            "category": "注射",
            "last_performed_at": "2025-03-01T11:00:00Z",
            "cycle_days": 150,
            "due_on": "2025-07-29",
            "status": "upcoming",
        },
    ]
    masked = service.mask_view(service.profile_view(cur, settings, member), frozenset())
    assert masked["tags"] == view["tags"] and masked["scores"] == view["scores"]


def _scans(plan: object) -> list[tuple[str, str]]:
    """(table, scan type) of every table scan in a JSON query plan."""
    found: list[tuple[str, str]] = []
    if isinstance(plan, list):
        for node in plan:
            found += _scans(node)
    elif isinstance(plan, dict):
        extra = plan.get("extra_info") or {}
        if "Table" in extra:
            found.append((str(extra["Table"]).rsplit(".", 1)[-1], str(extra.get("Type"))))
        found += _scans(plan.get("children", []))
    return found


def test_one_statement_of_index_scans_reads_a_profile(store: Store, member: str) -> None:
    seed_layering(store, member)
    _consent(store, member, "marketing_sms", "granted", "2025-01-01T10:00:00Z")
    row = (
        store.cursor()
        .execute(
            "EXPLAIN (ANALYZE, FORMAT json) " + lookup.READ_WITH_DUE_SQL,
            [member, service.member_ref(member)],
        )
        .fetchone()
    )
    assert row is not None
    scans = dict(_scans(json.loads(row[1])))
    assert set(scans) >= {
        "profile_documents",
        "consents",
        "customer_tags",
        "scores",
        "treatment_due",
    }
    # customer_tags has no index: it is stored sorted by one_id, so the scan reads only the
    # row groups whose min/max hold the member (migration 0008)
    assert {t for t, kind in scans.items() if kind != "Index Scan"} <= {
        "tag_definitions",
        "customer_tags",
    }

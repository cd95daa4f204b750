"""The consent ledger and may(): latest event wins, default deny, 单独同意, Art. 24 opt-out."""

from __future__ import annotations

from typing import Any

import pytest

from mecdp.config import Settings
from mecdp.errors import InputError
from mecdp.privacy.consent import (
    current_consents,
    list_consents,
    may,
    member_ref_for,
    quarantine_consent,
    record_consent,
)
from mecdp.privacy.vault import read_quarantine, vault_for
from mecdp.store import Store

M = "one_id:m1"


def _event(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "member_ref": M,
        "purpose": "marketing_sms",
        "status": "granted",
        "notice_version": "2025-01",
        "notice_text": "我们将向您发送营销短信……",
        "source": "mini_program",
        "evidence": "form:8841",
        "occurred_at": "2025-03-01T10:00:00+08:00",
    }
    return {**base, **over}


def test_default_is_deny_and_latest_event_wins(store: Store) -> None:
    cur = store.cursor()
    assert may(cur, M, "marketing_sms").allowed is False
    granted = record_consent(cur, recorded_by="compliance1", **_event())
    decision = may(cur, M, "marketing_sms")
    assert decision.allowed and decision.consent_ref == granted.consent_id
    assert granted.channel == "sms" and len(granted.notice_sha256) == 64
    withdrawn = record_consent(
        cur,
        recorded_by="compliance1",
        **_event(status="withdrawn", evidence=None, occurred_at="2025-04-01T09:00:00+08:00"),
    )
    decision = may(cur, M, "marketing_sms")
    assert not decision.allowed and decision.consent_ref == withdrawn.consent_id
    # an older event recorded later does not override the newer withdrawal
    record_consent(cur, recorded_by="import", **_event(occurred_at="2025-02-01T00:00:00Z"))
    assert not may(cur, M, "marketing_sms").allowed
    assert [c.status for c in current_consents(cur, M)] == ["withdrawn"]
    assert len(list_consents(cur, M)) == 3
    assert not may(cur, M, "marketing_email").allowed  # other purposes unaffected


def test_sensitive_data_needs_the_separate_consent(store: Store) -> None:
    cur = store.cursor()
    record_consent(cur, recorded_by="c", **_event(purpose="personalised_recommendation"))
    assert may(cur, M, "personalised_recommendation").allowed
    denied = may(cur, M, "personalised_recommendation", sensitive=True)
    assert not denied.allowed and "sensitive_medical_processing" in denied.reason
    record_consent(cur, recorded_by="c", **_event(purpose="sensitive_medical_processing"))
    assert may(cur, M, "personalised_recommendation", sensitive=True).allowed


def test_personalised_marketing_respects_the_art24_opt_out(store: Store) -> None:
    cur = store.cursor()
    record_consent(cur, recorded_by="c", **_event())
    assert may(cur, M, "marketing_sms", personalised=True).allowed  # no opt-out yet
    record_consent(
        cur,
        recorded_by="c",
        **_event(purpose="personalised_recommendation", status="withdrawn", evidence=None),
    )
    assert may(cur, M, "marketing_sms").allowed  # non-personalised SMS still fine
    decision = may(cur, M, "marketing_sms", personalised=True)
    assert not decision.allowed and "opted out" in decision.reason


def test_identifier_references_hold_no_plaintext(store: Store) -> None:
    ref = member_ref_for(b"s" * 32, "phone", "13812345678")
    assert ref.startswith("phone:bi:") and "13812345678" not in ref
    record_consent(store.cursor(), recorded_by="c", **_event(member_ref=ref))
    same_person = member_ref_for(b"s" * 32, "phone", "+8613812345678")
    assert may(store.cursor(), same_person, "marketing_sms").allowed


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"member_ref": "13812345678"}, "member_ref"),
        ({"purpose": "telepathy"}, "purpose"),
        ({"channel": "fax"}, "channel"),
        ({"status": "maybe"}, "status"),
        ({"notice_version": ""}, "notice_version"),
        ({"notice_text": None, "notice_sha256": "abc"}, "notice_sha256"),
        ({"source": ""}, "source"),
        ({"evidence": None}, "evidence"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2025-03-01T10:00:00"}, "occurred_at"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
    ],
)
def test_bad_consent_names_the_field(store: Store, over: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        record_consent(store.cursor(), recorded_by="c", **_event(**over))
    assert caught.value.field == field
    assert store.cursor().execute("SELECT count(*) FROM consents").fetchone() == (0,)


def test_bad_consent_goes_to_quarantine_with_origin_and_rule(
    store: Store, settings: Settings
) -> None:
    cur = store.cursor()
    payload = _event(purpose="telepathy")
    with pytest.raises(InputError) as caught:
        record_consent(cur, recorded_by="c", **payload)
    vault = vault_for(settings)
    quarantine_consent(
        cur, payload, caught.value, origin="file", vault=vault, source_id="crm", ref="c.csv:7"
    )
    row = cur.execute(
        "SELECT origin, record_kind, field, value, rule, ref FROM quarantine"
    ).fetchone()
    assert row is not None and str(row[3]).startswith("e1:")  # value sealed at rest
    assert row[:3] + row[4:] == ("file", "consent", "purpose", "consent.purpose", "c.csv:7")
    (plain,) = read_quarantine(cur, vault)
    assert plain["value"] == "telepathy" and "telepathy" in plain["payload"]

"""A workspace for the layering interface tests (API, CLI, scheduler): users and API keys per
role, and a few members whose tags follow from their facts by hand.

As of `LATE` (2025-06-30):

* `frequent` (SH01): first order 2025-06-01 (新客), 4 arrived visits in the last 90 days
  (高频到店用户) and 2 no-shows (爽约多次).
* `lapsed` (SH01): one order and one visit on 2024-06-01, nothing since: 沉睡 as of `LATE`
  (180 days), and a new customer, not dormant, as of `EARLY` (2024-07-01).
* `treated` (SH01): an order and a 玻尿酸 treatment on 2025-03-01 (a treatment due date),
  with the separate consent to process sensitive medical data.
* the two contact records of `seed_privacy_workspace` (no orders, no visits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from profiles.factories import Chain, one_id_of
from servers import PrivacyFixture, seed_privacy_workspace

from mecdp.config import Settings
from mecdp.privacy import consent
from mecdp.profiles.service import build_profiles, member_ref
from mecdp.store import Store, open_store

EARLY = datetime(2024, 7, 1)
LATE = datetime(2025, 6, 30)
MEMBERS = 3  # seed_members
PERSONS = MEMBERS + 2  # in seed_workspace: and the two contact records


@dataclass
class Members:
    frequent: str
    lapsed: str
    treated: str


def seed_members(store: Store) -> Members:
    """The three members above, OneID resolved and golden records built."""
    chain = Chain(store)
    frequent = chain.person(
        "crm_members", "2025-01-01 10:00:00", name="高频", store_code="SH01", phone="+8613800000001"
    )
    chain.order("2025-06-01 10:00:00", 3000, phone="+8613800000001")
    for day in ("2025-04-10", "2025-05-10", "2025-06-10", "2025-06-20"):
        chain.appointment(f"{day} 10:00:00", "arrived", phone="+8613800000001")
    for day in ("2025-02-10", "2025-03-10"):
        chain.appointment(f"{day} 10:00:00", "no_show", phone="+8613800000001")
    lapsed = chain.person(
        "crm_members", "2024-05-01 10:00:00", name="沉睡", store_code="SH01", phone="+8613800000002"
    )
    chain.order("2024-06-01 10:00:00", 5000, phone="+8613800000002")
    chain.appointment("2024-06-01 10:00:00", "arrived", phone="+8613800000002")
    treated = chain.person(
        "crm_members", "2025-02-01 10:00:00", name="疗程", store_code="SH01", phone="+8613800000003"
    )
    chain.order("2025-03-01 10:00:00", 8000, phone="+8613800000003")
    chain.treatment("2025-03-01 11:00:00", phone="+8613800000003")
    chain.resolve()
    build_profiles(store)
    members = Members(
        one_id_of(store, frequent), one_id_of(store, lapsed), one_id_of(store, treated)
    )
    consent.record_consent(
        store.cursor(),
        recorded_by="test",
        member_ref=member_ref(members.treated),
        purpose=consent.SENSITIVE_PURPOSE,
        status="granted",
        notice_version="v1",
        notice_text="我同意处理我的医疗信息",
        source="in_store_form",
        evidence="form-1",
    )
    return members


def seed_workspace(workspace: Path) -> tuple[PrivacyFixture, Members]:
    """A workspace file with the users/keys per role and the members (no server running)."""
    fixture = seed_privacy_workspace(workspace)
    store = open_store(Settings(workspace=workspace).db_path)
    try:
        members = seed_members(store)
    finally:
        store.close()
    return fixture, members

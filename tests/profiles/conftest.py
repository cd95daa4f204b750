"""Fixtures for profile tests: a small chain in an in-memory store, OneID resolved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from profiles.factories import Chain, one_id_of, seed_layering
from servers import PrivacyFixture, seed_privacy_workspace

from mecdp.config import Settings, init_workspace
from mecdp.profiles.service import build_profiles
from mecdp.store import Store, open_store

PHONE = "+8613971234586"


@pytest.fixture
def store() -> Iterator[Store]:
    s = open_store(None)
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(workspace=tmp_path / "ws")
    init_workspace(s)
    return s


@pytest.fixture
def member(store: Store) -> str:
    """The one_id of 张小雅 (`seed_member`), resolved and built."""
    chain = Chain(store)
    record = seed_member(chain)
    chain.resolve()
    build_profiles(store)
    return one_id_of(store, record)


def seed_member(chain: Chain) -> str:
    """张小雅: member master (SH01), a lead form with swapped day/month birthday, a call-centre
    note, a 5-session course card with one treatment after it, two visits, feedback, an
    event. Returns the member-master record id."""
    member = chain.person(
        "crm_members",
        "2024-03-01 10:00:00",
        name="张小雅",
        gender="F",
        birthday="1990-05-01",
        city="上海",
        store_code="SH01",
        phone=PHONE,
        member_no="M0001",
    )
    chain.person(
        "douyin_leads",
        "2025-01-01 10:00:00",
        kind="interactions",
        name="张雅",
        birthday="1990-01-05",
        city="杭州",
        phone=PHONE,
    )
    chain.person(
        "call_center", "2025-02-01 10:00:00", kind="interactions", name="张小雅呀", phone=PHONE
    )
    chain.order("2024-04-01 10:00:00", 12800, order_type="course_card", sessions=5, phone=PHONE)
    chain.order("2024-05-01 10:00:00", 3000, member_no="M0001")
    chain.order("2024-05-02 10:00:00", 999, status="refunded", member_no="M0001")
    chain.appointment("2024-04-10 10:00:00", "arrived", phone=PHONE)
    chain.appointment("2024-06-10 10:00:00", "arrived", phone=PHONE, consultant="刘顾问")
    chain.appointment("2024-07-10 10:00:00", "no_show", phone=PHONE, consultant="赵顾问")
    chain.treatment("2024-04-10 11:00:00", phone=PHONE)
    chain.treatment("2024-03-10 11:00:00", phone=PHONE)  # before the card: not counted
    chain.feedback("2024-04-11 10:00:00", 9, phone=PHONE)
    chain.event("2024-04-12 10:00:00", phone=PHONE)
    chain.interaction("2024-08-01 10:00:00", phone=PHONE)
    return member


def seed_profile_workspace(workspace: Path) -> tuple[PrivacyFixture, str]:
    """A workspace for a real server: users and API keys per role (consultants serve SH01),
    张小雅 resolved and built (home store SH01) with the tags, scores and treatment due dates
    `mecdp compute` writes. Returns the credentials and her one_id."""
    fixture = seed_privacy_workspace(workspace)
    store = open_store(Settings(workspace=workspace).db_path)
    try:
        chain = Chain(store)
        record = seed_member(chain)
        chain.resolve()
        build_profiles(store)
        one_id = one_id_of(store, record)
        seed_layering(store, one_id)
    finally:
        store.close()
    return fixture, one_id

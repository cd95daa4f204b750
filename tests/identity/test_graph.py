"""The deterministic graph: linking, blocklist, unique types, limits, households, stable ids."""

from __future__ import annotations

from pathlib import Path

from identity.factories import Records, one_id

from mecdp.identity.service import resolve, resolve_identities
from mecdp.store import Store


def rebuild(store: Store, workspace: Path) -> None:
    resolve_identities(store, workspace=workspace, match=False)


def test_identifiers_on_one_record_link_people_across_sources(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(phone="+8613811112222", member_no="M1", source="crm")
    b = records.add(phone="+8613811112222", wechat_unionid="oU1", source="pos")
    c = records.add(wechat_unionid="oU1", source="wechat")
    d = records.add(phone="+8613999990000", source="crm")
    rebuild(store, workspace)
    assert one_id(store, a) == one_id(store, b) == one_id(store, c)
    assert one_id(store, d) != one_id(store, a)
    cur = store.cursor()
    assert resolve(cur, "wechat_unionid:oU1").one_id == one_id(store, a)
    assert resolve(cur, "member_no:M1").one_id == one_id(store, a)
    assert resolve(cur, "phone:+8600000000001").status == "unknown"


def test_blocklisted_values_never_link(store: Store, workspace: Path, records: Records) -> None:
    a = records.add(phone="+8613800000000", member_no="M1")  # shipped blocklist value
    b = records.add(phone="+8613800000000", member_no="M2")
    c = records.add(phone="+8613900000000", member_no="M3")  # blocklist pattern (8 zeros)
    d = records.add(phone="+8613900000000", member_no="M4")
    e = records.add(email="test001@qq.com", member_no="M5")  # test account pattern
    f = records.add(email="test001@qq.com", member_no="M6")
    rebuild(store, workspace)
    assert len({one_id(store, r) for r in (a, b, c, d, e, f)}) == 6
    cur = store.cursor()
    assert resolve(cur, "phone:+8613800000000").status == "blocklisted"
    statuses = cur.execute(
        "SELECT DISTINCT status FROM identity_links WHERE id_value = '+8613800000000'"
    ).fetchall()
    assert statuses == [("blocklisted",)]


def test_workspace_blocklist_adds_kiosk_devices(
    store: Store, workspace: Path, records: Records
) -> None:
    (workspace / "identity.yaml").write_text(
        "blocklist:\n  values:\n    oaid: ['kiosk-0001']\ntypes:\n  phone: {limit: 2}\n"
    )
    a = records.add(oaid="kiosk-0001", phone="+8613711110001")
    b = records.add(oaid="kiosk-0001", phone="+8613711110002")
    rebuild(store, workspace)
    assert one_id(store, a) != one_id(store, b)


def test_a_shared_phone_never_merges_two_unique_identifiers(
    store: Store, workspace: Path, records: Records
) -> None:
    """Mother and daughter share one phone (家庭共用手机号) but hold two member numbers."""
    mum = records.add(name="王丽", member_no="M100", phone="+8613712345678")
    kid = records.add(name="王小雨", member_no="M200", phone="+8613712345678")
    mum_pos = records.add(member_no="M100", customer_no="C9")
    only_phone = records.add(name="王丽", phone="+8613712345678", source="chat")
    rebuild(store, workspace)
    assert one_id(store, mum) == one_id(store, mum_pos)
    assert one_id(store, mum) != one_id(store, kid)
    # The household phone links nobody: the chat record stands alone (for matching).
    assert one_id(store, only_phone) not in {one_id(store, mum), one_id(store, kid)}
    found = resolve(store.cursor(), "phone:+8613712345678")
    assert found.status == "ambiguous"
    assert set(found.candidates) >= {one_id(store, mum), one_id(store, kid)}


def test_a_shared_phone_with_conflicting_birthdays_is_a_household(
    store: Store, workspace: Path, records: Records
) -> None:
    mum = records.add(
        name="李娜", birthday="1970-03-04", phone="+8613612345678", email="ln@163.com"
    )
    kid = records.add(name="李雪", birthday="1998-07-21", phone="+8613612345678")
    # Typos of one birthday (day/month swapped, one day off) are the same person.
    again = records.add(name="李娜", birthday="1970-04-03", email="ln@163.com", xhs_user_id="x1")
    rebuild(store, workspace)
    assert one_id(store, mum) != one_id(store, kid)
    assert one_id(store, mum) == one_id(store, again)


def test_per_person_limit_stops_a_shared_device_gluing_people(
    store: Store, workspace: Path, records: Records
) -> None:
    people = [
        records.add(member_no=f"M{i}", idfa="SHARED-DEVICE", phone=f"+86137000000{i:02d}")
        for i in range(12)
    ]
    rebuild(store, workspace)
    assert len({one_id(store, r) for r in people}) == 12


def test_limits_only_apply_to_bridges(store: Store, workspace: Path, records: Records) -> None:
    """Four phones on one member's records (limit 3) do not split the member."""
    recs = [records.add(member_no="M1", phone=f"+861370000000{i}") for i in range(4)]
    rebuild(store, workspace)
    assert len({one_id(store, r) for r in recs}) == 1


def test_merge_keeps_the_older_one_id_and_redirects_the_other(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(phone="+8613511110000", when="2024-01-01 00:00:00")
    b = records.add(email="x@qq.com", when="2025-01-01 00:00:00")
    rebuild(store, workspace)
    old_a, old_b = one_id(store, a), one_id(store, b)
    assert old_a < old_b
    records.add(phone="+8613511110000", email="x@qq.com", source="pos")
    rebuild(store, workspace)
    assert one_id(store, a) == one_id(store, b) == old_a
    cur = store.cursor()
    found = resolve(cur, old_b)
    assert (found.one_id, found.status, found.redirected_from) == (old_a, "redirected", old_b)
    event = cur.execute(
        "SELECT action, one_id, other_one_id, rule, evidence FROM identity_events "
        "WHERE action = 'merge'"
    ).fetchone()
    assert event is not None and event[:3] == ("merge", old_a, old_b)
    assert "pos:" in event[4]  # the record that carries both identifiers is the evidence


def test_rebuild_is_stable(store: Store, workspace: Path, records: Records) -> None:
    recs = [records.add(phone=f"+86139000011{i:02d}", member_no=f"M{i}") for i in range(20)]
    rebuild(store, workspace)
    before = {r: one_id(store, r) for r in recs}
    rebuild(store, workspace)
    assert {r: one_id(store, r) for r in recs} == before
    assert store.cursor().execute("SELECT count(*) FROM identity_events").fetchone() == (0,)

"""Explain, split (audited, reversible inputs), review queue and real-time stitching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from identity.factories import Records, one_id

from mecdp.errors import Conflict, NotFound
from mecdp.identity.matching import name_keys
from mecdp.identity.service import (
    decide_review,
    explain,
    history,
    list_review,
    pair_id_of,
    person_identifiers,
    resolve,
    resolve_identities,
    split,
    stitch_records,
)
from mecdp.privacy.audit import list_audit, verify_audit
from mecdp.store import Store


def test_explain_shows_every_edge_and_why(store: Store, workspace: Path, records: Records) -> None:
    a = records.add(phone="+8613511112222", member_no="M1", source="crm")
    b = records.add(phone="+8613511112222", wechat_unionid="oU9", source="pos")
    records.add(phone="+8613800000000", member_no="M1", source="test")
    resolve_identities(store, workspace=workspace, match=False)
    graph = explain(store.cursor(), "member_no:M1")
    assert graph["one_id"] == one_id(store, a) == one_id(store, b)
    statuses = {(e["id_type"], e["status"]) for e in graph["edges"]}
    assert ("phone", "blocklisted") in statuses and ("wechat_unionid", "linked") in statuses
    # phone and member_no are linked because record `a` carries both.
    assert {
        "from": {"id_type": "member_no", "id_value": "M1"},
        "to": {"id_type": "phone", "id_value": "+8613511112222"},
        "evidence": {"record_id": a},
    } in graph["links"]
    ids = person_identifiers(store.cursor(), graph["one_id"])
    assert {i["id_type"] for i in ids["identifiers"]} == {"member_no", "phone", "wechat_unionid"}


def test_split_by_removing_an_identifier_is_audited_and_loses_nothing(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(member_no="M1", phone="+8613611110000", when="2024-01-01 00:00:00")
    b = records.add(email="wrong@qq.com", phone="+8613611110000", when="2025-01-01 00:00:00")
    resolve_identities(store, workspace=workspace, match=False)
    person = one_id(store, a)
    assert one_id(store, b) == person
    split(
        store,
        action="remove_identifier",
        id_type="phone",
        id_value="+8613611110000",
        reason="front desk typed the wrong phone",
        actor="alice",
        actor_role="admin",
    )
    assert one_id(store, a) == person  # the part with most records keeps the id
    assert one_id(store, b) != person
    cur = store.cursor()
    # The input is untouched; the edge is in the log as removed.
    assert cur.execute(
        "SELECT count(*) FROM record_identifiers WHERE id_value = '+8613611110000'"
    ).fetchone() == (2,)
    assert {
        r[0]
        for r in cur.execute(
            "SELECT status FROM identity_links WHERE id_value = '+8613611110000'"
        ).fetchall()
    } == {"removed"}
    actions = [e["action"] for e in history(cur, person)]
    assert "remove_identifier" in actions and "split" in actions
    entries = list_audit(cur, action="identity.remove_identifier")
    assert entries and entries[0]["actor"] == "alice"
    assert f"one_id:{person}" in entries[0]["member_refs"]
    assert "+8613611110000" not in json.dumps(entries)  # no contact values in the audit log
    assert verify_audit(cur).ok


def test_split_by_removing_one_edge_and_by_blocklisting(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(member_no="M1", oaid="dev-1")
    b = records.add(member_no="M2", customer_no="C1")
    c = records.add(customer_no="C1", oaid="dev-1", source="pos")
    resolve_identities(store, workspace=workspace, match=False)
    assert one_id(store, a) != one_id(store, b)  # unique member numbers: never merged
    assert one_id(store, c) == one_id(store, b)  # customer_no (priority 80) beats the device
    split(store, action="remove_edge", record_id=c, id_type="customer_no", id_value="C1")
    assert one_id(store, c) == one_id(store, a)
    split(store, action="blocklist", id_type="oaid", id_value="dev-1")
    assert len({one_id(store, r) for r in (a, b, c)}) == 3
    with pytest.raises(NotFound):
        split(store, action="remove_edge", record_id=a, id_type="phone", id_value="+86100")


def test_stitch_records_links_new_records_into_the_graph(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(phone="+8613711110000", member_no="M1", when="2024-01-01 00:00:00")
    b = records.add(email="b@qq.com", when="2024-06-01 00:00:00")
    resolve_identities(store, workspace=workspace, match=False)
    pa_, pb = one_id(store, a), one_id(store, b)
    cur = store.cursor()
    # Joins a known person; a brand-new person; a bridge merges (older id survives);
    # a blocklisted phone links nobody.
    r1 = records.add(phone="+8613711110000", douyin_open_id="_000d1", source="stream")
    r2 = records.add(phone="+8613722220000", source="stream")
    r3 = records.add(douyin_open_id="_000d1", email="b@qq.com", source="stream")
    r4 = records.add(phone="+8613800000000", source="stream")
    result = stitch_records(cur, [r1, r2, r3, r4])
    assert one_id(store, r1) == pa_ == one_id(store, r3) == one_id(store, b)
    assert resolve(cur, pb).one_id == pa_
    assert one_id(store, r2) not in {pa_, one_id(store, r4)}
    assert pa_ in result.affected and result.merged == 1 and result.created == 2
    assert resolve(cur, "douyin_open_id:_000d1").one_id == pa_
    # A batch rebuild gives the same grouping.
    groups = {r: one_id(store, r) for r in (a, b, r1, r2, r3, r4)}
    resolve_identities(store, workspace=workspace, match=False)
    assert {r: one_id(store, r) for r in groups} == groups
    # A second member number is never merged in: the record joins the person its
    # strongest identifier names and the conflicting one is not attached.
    r5 = records.add(member_no="M9", email="b@qq.com", source="stream")
    stitch_records(cur, [r5])
    assert resolve(cur, "member_no:M9").one_id is None
    assert resolve(cur, "member_no:M1").one_id == pa_


def test_review_queue_approve_and_remembered_rejection(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(name="张丽娜", birthday="1990-05-06", member_no="M1")
    b = records.add(name="张莉娜", birthday="1990-05-06", phone="+8613912340000")
    c = records.add(name="王芳", birthday="1985-01-02", member_no="M2")
    d = records.add(name="王芳", birthday="1985-01-02", email="wf@163.com")
    resolve_identities(store, workspace=workspace, match=False)
    cur = store.cursor()
    now = "2025-01-01 00:00:00"
    for rl, rr in ((a, b), (c, d)):
        cur.execute(
            "INSERT INTO identity_match_pairs VALUES (?, ?, ?, ?, ?, 9.5, 0.95, '{}', "
            "'pending', NULL, NULL, NULL, ?)",
            [pair_id_of(rl, rr), rl, rr, one_id(store, rl), one_id(store, rr), now],
        )
    queue = list_review(cur)
    assert {q["pair_id"] for q in queue} == {pair_id_of(a, b), pair_id_of(c, d)}
    decide_review(store, pair_id_of(a, b), approve=True, actor="bob")
    assert one_id(store, a) == one_id(store, b)
    decide_review(store, pair_id_of(c, d), approve=False, actor="bob")
    assert one_id(store, c) != one_id(store, d)
    with pytest.raises(Conflict):
        decide_review(store, pair_id_of(c, d), approve=True)
    assert list_review(cur) == []
    merge = [e for e in history(cur, one_id(store, a)) if e["action"] == "merge"]
    assert merge and merge[0]["rule"] == "review"


def test_pinyin_keys_catch_homophones_and_swaps() -> None:
    assert name_keys("张丽娜")[0] == name_keys("张莉娜")[0]  # 同音字
    assert name_keys("张丽娜")[1] == name_keys("张娜丽")[1]  # swapped given name
    assert name_keys("单丽")[0].startswith("shan")  # surname reading
    assert name_keys("欧阳娜娜")[2] == "ou yang"

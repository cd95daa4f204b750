"""The layering run: everything persisted with history, rule versions, and event refresh."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from collect.collector_server import RunningServer, free_port, make_workspace
from compute.layering_seed import EARLY, LATE, Members, seed_members
from profiles.factories import Chain

from mecdp.compute import service
from mecdp.config import Settings
from mecdp.store import Store, open_store


@pytest.fixture
def store() -> Iterator[Store]:
    s = open_store(None)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def members(store: Store) -> Members:
    return seed_members(store)


def _tags(store: Store, one_id: str) -> dict[str, str]:
    rows = (
        store.cursor()
        .execute("SELECT tag_id, value FROM customer_tags WHERE one_id = ?", [one_id])
        .fetchall()
    )
    return dict(rows)


def _history(store: Store, tag_id: str) -> list[tuple[str, str, str | None, datetime]]:
    return (
        store.cursor()
        .execute(
            "SELECT one_id, change, value, changed_at FROM customer_tag_history "
            "WHERE tag_id = ? ORDER BY changed_at, one_id",
            [tag_id],
        )
        .fetchall()
    )


def test_a_run_persists_tags_scores_tiers_and_due_dates(store: Store, members: Members) -> None:
    report = service.compute_all(store, as_of=LATE)
    cur = store.cursor()
    persons = cur.execute("SELECT count(*) FROM profiles").fetchone()
    assert persons is not None and report.members == persons[0] == report.scores
    frequent = _tags(store, members.frequent)
    assert frequent["new_customer"] == "true"
    assert frequent["frequent_visitor"] == "true"
    assert frequent["frequent_no_show"] == "true"
    assert "dormant" not in frequent
    assert _tags(store, members.lapsed)["dormant"] == "true"
    # every member has a value tier and a purchase tier as system tags, equal to the scores
    tiers = dict(
        cur.execute(
            "SELECT s.one_id, t.value FROM scores s JOIN customer_tags t "
            "ON t.one_id = s.one_id AND t.tag_id = 'value_tier' WHERE t.value = s.value_tier"
        ).fetchall()
    )
    assert len(tiers) == report.members
    row = cur.execute(
        "SELECT frequency, monetary_fen, purchase_tier FROM scores WHERE one_id = ?",
        [members.frequent],
    ).fetchone()
    assert row == (1, 300000, "one_time")
    due = cur.execute(
        "SELECT one_id, status FROM treatment_due WHERE one_id = ?", [members.treated]
    ).fetchall()
    assert len(due) == 1
    flag = {"overdue": "treatment_overdue", "upcoming": "treatment_due_soon"}.get(due[0][1])
    assert flag is None or _tags(store, members.treated)[flag] == "true"
    run = cur.execute(
        "SELECT status, members, parameters FROM compute_runs WHERE run_id = ?", [report.run_id]
    ).fetchone()
    assert run is not None and run[0] == "done" and run[1] == report.members
    parameters = json.loads(run[2])
    assert {c["metric"] for c in parameters["rfm"]["cutoffs"]} == {
        "recency_days", "frequency", "monetary_fen",
    }  # fmt: skip
    assert "skipped" in parameters["clv"]  # three members: too few to fit CLV
    assert parameters["tags"]["value_tier"] == 1
    # indexes survive the table swap of scores and treatment_due
    indexes = {r[0] for r in cur.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    assert {"scores_one_id", "treatment_due_one_id"} <= indexes
    # the rewritten tables are stored sorted by member (point reads skip other row groups)
    for table in ("scores", "treatment_due", "customer_tags", "customer_tag_history"):
        stored = [
            r[0] for r in cur.execute(f"SELECT one_id FROM {table} ORDER BY rowid").fetchall()
        ]
        assert stored == sorted(stored), table


def test_a_later_run_records_who_gained_and_lost_each_tag(store: Store, members: Members) -> None:
    first = service.compute_all(store, as_of=EARLY)
    assert _tags(store, members.lapsed).get("new_customer") == "true"
    assert "dormant" not in _tags(store, members.lapsed)
    second = service.compute_all(store, as_of=LATE)
    assert first.tag_changes > 0 and second.tag_changes > 0
    dormant = _history(store, "dormant")
    assert (members.lapsed, "gained", "true", LATE) in dormant
    new = _history(store, "new_customer")
    assert (members.lapsed, "gained", "true", EARLY) in new
    assert (members.lapsed, "lost", None, LATE) in new
    # customer_tags holds exactly the values the history ends with
    cur = store.cursor()
    mismatched = cur.execute(
        """
        WITH last AS (
            SELECT one_id, tag_id, arg_max_null(value, changed_at) AS value
            FROM customer_tag_history GROUP BY one_id, tag_id)
        SELECT count(*) FROM last l
        FULL OUTER JOIN customer_tags t ON t.one_id = l.one_id AND t.tag_id = l.tag_id
        WHERE l.value IS DISTINCT FROM t.value
        """
    ).fetchone()
    assert mismatched == (0,)
    # a third run with nothing new changes nothing
    third = service.compute_all(store, as_of=LATE)
    assert third.tag_changes == 0


def test_a_changed_rule_gets_a_new_version(store: Store, members: Members, tmp_path: Path) -> None:
    service.compute_all(store, as_of=LATE, workspace=tmp_path)
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags" / "visits.yaml").write_text(
        "tags:\n"
        "  - tag_id: frequent_visitor\n"
        "    name_zh: 高频到店用户\n"
        "    name_en: Frequent visitor\n"
        "    category: lifecycle\n"
        "    rule: {kind: aggregate, fact: appointments, where: [{column: status, op: eq,"
        " value: arrived}], window_days: 90, measure: count, op: gte, value: 2}\n",
        encoding="utf-8",
    )
    service.compute_all(store, as_of=LATE, workspace=tmp_path)
    cur = store.cursor()
    row = cur.execute(
        "SELECT version, origin FROM tag_definitions WHERE tag_id = 'frequent_visitor'"
    ).fetchone()
    assert row == (2, "workspace")
    untouched = cur.execute(
        "SELECT version FROM tag_definitions WHERE tag_id = 'dormant'"
    ).fetchone()
    assert untouched == (1,)
    versions = cur.execute(
        "SELECT DISTINCT rule_version FROM customer_tags WHERE tag_id = 'frequent_visitor'"
    ).fetchall()
    assert versions in ([(1,)], [(2,)])  # kept members keep the version they got it by


def test_event_refresh_touches_only_the_persons_given(store: Store, members: Members) -> None:
    service.compute_all(store, as_of=LATE)
    before_lapsed = _tags(store, members.lapsed)
    chain = Chain(store)
    for day in ("2025-06-21", "2025-06-22", "2025-06-23", "2025-06-24"):
        chain.appointment(f"{day} 10:00:00", "arrived", phone="+8613800000002")
    chain.resolve()
    assert "frequent_visitor" not in _tags(store, members.lapsed)
    with store.transaction() as cur:
        changes = service.refresh_event_tags(cur, [members.lapsed], as_of=LATE)
    after = _tags(store, members.lapsed)
    assert after["frequent_visitor"] == "true"
    assert changes >= 1
    # scheduled tags are left for the next full run (dormant is not an event tag)
    assert after.get("dormant") == before_lapsed.get("dormant")
    gained = [h for h in _history(store, "frequent_visitor") if h[0] == members.lapsed]
    assert [h[1] for h in gained] == ["gained"]


def _sync(workspace: Path) -> None:
    store = open_store(Settings(workspace=workspace).db_path)
    try:
        with store.transaction() as cur:
            service.sync_definitions(cur, workspace)
    finally:
        store.close()


def test_the_stream_processor_refreshes_event_tags(tmp_path: Path) -> None:
    workspace, keys = make_workspace(tmp_path / "ws", {"mini_app": "wechat_mp"})
    (workspace / "tags").mkdir()
    (workspace / "tags" / "app.yaml").write_text(
        "tags:\n"
        "  - tag_id: app_active\n"
        "    name_zh: 小程序活跃\n"
        "    name_en: Mini-program active\n"
        "    category: interaction\n"
        "    value_type: boolean\n"
        "    refresh: event\n"
        "    rule: {kind: aggregate, fact: events, where: [{column: type, op: eq,"
        " value: track}], window_days: 30, measure: count, op: gte, value: 2}\n",
        encoding="utf-8",
    )
    _sync(workspace)
    server = RunningServer(workspace=workspace, port=free_port(), write_keys=keys)
    server.start()
    try:
        now = datetime.now(UTC)
        batch = [
            {"type": "identify", "userId": "u-1", "messageId": "i1",
             "traits": {"name": "李 小雨", "phone": "13800138011"}},
            *[
                {"type": "track", "event": "Viewed Item", "userId": "u-1", "messageId": f"t{i}",
                 "timestamp": (now - timedelta(minutes=i)).isoformat()}
                for i in range(2)
            ],
        ]  # fmt: skip
        sent = time.monotonic()
        r = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(keys["mini_app"], ""))
        assert r.status_code == 200, r.text
        assert server.status(wait_ms=20_000)["processor"]["lag"] == 0
        elapsed = time.monotonic() - sent
    finally:
        server.stop()
    assert elapsed < 20
    rows = server.query(
        "SELECT t.value, h.change, h.run_id FROM customer_tags t "
        "JOIN customer_tag_history h ON h.one_id = t.one_id AND h.tag_id = t.tag_id "
        "WHERE t.tag_id = 'app_active'"
    )
    assert len(rows) == 1
    value, change, run_id = rows[0]
    assert (value, change) == ("true", "gained") and run_id.startswith("event:")


def test_system_tags_cannot_be_saved_or_deleted(store: Store) -> None:
    from mecdp.compute.tags import parse_definition
    from mecdp.errors import InputError, NotFound

    definition = parse_definition(
        {
            "tag_id": "value_tier", "name_zh": "x", "name_en": "x", "category": "value",
            "value_type": "boolean", "refresh": "manual",
            "rule": {"kind": "trait", "conditions": [{"column": "city", "op": "eq",
                                                       "value": "上海"}]},
        }
    )  # fmt: skip
    cur = store.cursor()
    with pytest.raises(InputError, match="computed by the layering run"):
        service.save_definition(cur, definition, "tester")
    with pytest.raises(NotFound):
        service.delete_definition(cur, "no_such_tag")


def test_treatment_tags_show_only_where_medical_data_may(store: Store, members: Members) -> None:
    from mecdp.compute.queries import member_layering

    # the 玻尿酸 treatment of 2025-03-01 is next due 270 days later: upcoming in November
    service.compute_all(store, as_of=datetime(2025, 11, 10))
    cur = store.cursor()
    assert _tags(store, members.treated)["treatment_due_soon"] == "true"
    plain = member_layering(cur, members.treated, medical=False)
    medical = member_layering(cur, members.treated, medical=True)
    assert "treatment_due_soon" not in {t["tag_id"] for t in plain["tags"]}
    assert plain["treatment_due"] is None
    assert "treatment_due_soon" in {t["tag_id"] for t in medical["tags"]}
    assert [d["status"] for d in medical["treatment_due"]] == ["upcoming"]


def test_the_workspace_sets_the_clv_minimums(
    store: Store, members: Members, tmp_path: Path
) -> None:
    (tmp_path / "layering.yaml").write_text("clv: {min_customers: 7}\n", encoding="utf-8")
    report = service.compute_all(store, as_of=LATE, workspace=tmp_path)
    assert report.parameters["clv"]["skipped"] == (
        "BG/NBD needs at least 7 customers with a purchase, got 3"
    )


def test_course_card_sessions_count_every_card_bought(store: Store, members: Members) -> None:
    chain = Chain(store)
    phone = "+8613800000003"  # the treated member: one 玻尿酸 treatment on 2025-03-01
    card = chain.order("2025-04-01 10:00:00", 6000, order_type="course_card", sessions=2,
                       phone=phone)  # fmt: skip
    store.cursor().execute("UPDATE orders SET quantity = 2 WHERE record_id = ?", [card])
    for day in ("2025-04-10", "2025-05-10", "2025-06-10"):
        chain.treatment(f"{day} 10:00:00", phone=phone)
    chain.resolve()
    service.compute_all(store, as_of=LATE)
    # 2 cards x 2 sessions = 4 bought, 3 used since the purchase: one left
    assert _tags(store, members.treated)["unused_course_card"] == "true"
    store.cursor().execute("UPDATE orders SET quantity = 1 WHERE record_id = ?", [card])
    service.compute_all(store, as_of=LATE)
    assert "unused_course_card" not in _tags(store, members.treated)

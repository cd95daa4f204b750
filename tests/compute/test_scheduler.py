"""The compute scheduler: schedule parsing and next-run times, scheduled runs on a real store
(driven directly with a one-second interval), failures kept without stopping the schedule,
and never two runs at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import monotonic, sleep
from zoneinfo import ZoneInfo

import pytest
from compute.layering_seed import LATE, MEMBERS, seed_members
from pydantic import ValidationError

from mecdp.compute.scheduler import ComputeScheduler, parse_schedule
from mecdp.config import Settings, init_workspace
from mecdp.errors import Conflict, InputError
from mecdp.store import Store, open_store

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    init_workspace(Settings(workspace=tmp_path / "ws"))
    s = open_store(tmp_path / "ws" / "mecdp.duckdb")
    try:
        seed_members(s)
        yield s
    finally:
        s.close()


def _settings(tmp_path: Path, schedule: str) -> Settings:
    return Settings(workspace=tmp_path / "ws", compute_schedule=schedule)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Wait for a background outcome (not a timing assertion: the bound only stops a hang)."""
    deadline = monotonic() + timeout
    while not condition():
        if monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        sleep(0.05)


def _runs(store: Store) -> list[tuple[str, str]]:
    rows = store.cursor().execute("SELECT status, scope FROM compute_runs ORDER BY started_at")
    return [(str(a), str(b)) for a, b in rows.fetchall()]


def test_schedule_forms() -> None:
    assert parse_schedule("off").kind == "off"
    every = parse_schedule(" every:30m ")
    assert (every.kind, every.interval, every.text) == ("every", timedelta(minutes=30), "every:30m")
    assert parse_schedule("every:2h").interval == timedelta(hours=2)
    daily = parse_schedule("Daily@3:05")
    assert (daily.kind, daily.text, daily.at) == ("daily", "daily@03:05", time(3, 5))
    for bad, rule in (
        ("hourly", "schedule.format"),
        ("every:0m", "schedule.interval"),
        ("every:5", "schedule.format"),
        ("daily@24:00", "schedule.time"),
        ("daily@03:60", "schedule.time"),
    ):
        with pytest.raises(InputError) as caught:
            parse_schedule(bad)
        assert caught.value.field == "compute_schedule" and caught.value.rule == rule
        assert "compute_schedule" in caught.value.message


def test_a_bad_schedule_setting_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(compute_schedule="twice a day")
    assert "compute_schedule" in str(caught.value) and "daily@HH:MM" in str(caught.value)
    assert Settings().compute_schedule == "daily@03:00"


def test_next_run_times() -> None:
    daily = parse_schedule("daily@03:00")  # 03:00 in Shanghai is 19:00 UTC the day before
    before = datetime(2025, 1, 1, 18, 59, tzinfo=UTC)
    assert daily.next_after(before, SHANGHAI) == datetime(2025, 1, 1, 19, 0, tzinfo=UTC)
    at = datetime(2025, 1, 1, 19, 0, tzinfo=UTC)  # exactly then: the next day's
    assert daily.next_after(at, SHANGHAI) == datetime(2025, 1, 2, 19, 0, tzinfo=UTC)
    after = datetime(2025, 1, 1, 20, 0, tzinfo=UTC)
    assert daily.next_after(after, SHANGHAI) == datetime(2025, 1, 2, 19, 0, tzinfo=UTC)
    assert daily.next_after(before, ZoneInfo("UTC")) == datetime(2025, 1, 2, 3, 0, tzinfo=UTC)
    every = parse_schedule("every:45s")
    assert every.next_after(at, SHANGHAI) == at + timedelta(seconds=45)
    assert parse_schedule("off").next_after(at, SHANGHAI) is None


def test_scheduled_runs_recompute_on_the_interval(store: Store, tmp_path: Path) -> None:
    scheduler = ComputeScheduler(store, _settings(tmp_path, "every:1s"))
    assert scheduler.status()["next_run_at"] is None  # not started
    scheduler.start()
    try:
        status = scheduler.status()
        assert status["active"] is True and status["schedule"] == "every:1s"
        assert status["next_run_at"] is not None
        _wait_for(lambda: scheduler.status()["runs_done"] >= 2, "two scheduled runs")
    finally:
        scheduler.stop()
    status = scheduler.status()
    assert status["active"] is False and status["next_run_at"] is None
    assert status["runs_failed"] == 0 and status["last_error"] is None
    last = status["last_run"]
    assert last["trigger"] == "schedule" and last["status"] == "done" and last["members"] == MEMBERS
    done = [r for r in _runs(store) if r[0] == "done"]
    assert len(done) == status["runs_done"] >= 2
    tagged = store.cursor().execute("SELECT count(*) FROM customer_tags").fetchone()
    assert tagged is not None and tagged[0] > 0
    by = store.cursor().execute("SELECT DISTINCT updated_by FROM tag_definitions").fetchall()
    assert by == [("scheduler",)]
    # a stopped scheduler starts again (the server restarts its workers after compaction)
    before = status["runs_done"]
    scheduler.start()
    try:
        _wait_for(lambda: scheduler.status()["runs_done"] > before, "a run after a restart")
    finally:
        scheduler.stop()


def test_a_failing_run_is_kept_and_the_schedule_goes_on(store: Store, tmp_path: Path) -> None:
    (tmp_path / "ws" / "layering.yaml").write_text("rfm:\n  window_days: -5\n", encoding="utf-8")
    scheduler = ComputeScheduler(store, _settings(tmp_path, "every:1s"))
    scheduler.start()
    try:
        _wait_for(lambda: scheduler.status()["runs_failed"] >= 2, "two failed runs")
        status = scheduler.status()
        assert status["active"] is True and status["next_run_at"] is not None
        assert "window_days" in status["last_error"]
        assert status["last_run"]["status"] == "failed"
        # repaired: the next scheduled run succeeds
        (tmp_path / "ws" / "layering.yaml").unlink()
        _wait_for(lambda: scheduler.status()["runs_done"] >= 1, "a run after the repair")
    finally:
        scheduler.stop()
    assert scheduler.status()["last_error"] is not None  # the last failure stays visible


def test_never_two_runs_at_once(store: Store, tmp_path: Path) -> None:
    scheduler = ComputeScheduler(store, _settings(tmp_path, "off"))
    scheduler.start()  # off: no thread, but requested runs go through the same gate
    assert scheduler.status()["active"] is False
    inside, release = threading.Event(), threading.Event()

    def hold(label: str, _done: int, _total: int) -> None:
        if label == "tags":  # the first run stops half-way until released
            inside.set()
            release.wait(60)

    results: list[object] = []
    first = threading.Thread(
        target=lambda: results.append(scheduler.run_now(as_of=LATE, progress=hold))
    )
    first.start()
    try:
        assert inside.wait(60)
        assert scheduler.running and scheduler.status()["running"]["trigger"] == "api"
        with pytest.raises(Conflict) as caught:
            scheduler.run_now(as_of=LATE)
        assert "already in progress" in caught.value.message
        scheduler._tick()  # a scheduled run coming due now is skipped, not queued
        assert scheduler.status()["runs_skipped"] == 1
    finally:
        release.set()
        first.join(120)
    assert not scheduler.running
    assert len(results) == 1 and scheduler.status()["runs_done"] == 1
    assert _runs(store) == [("done", "all")]
    second = scheduler.run_now(as_of=LATE, user="tester")
    assert second.members == MEMBERS and scheduler.status()["runs_done"] == 2

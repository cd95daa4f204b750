"""The raw-log writer on a real DuckDB file: group commit and dedupe beyond the memory window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from mecdp.collect.events import AcceptedMessage
from mecdp.collect.writer import RawLogWriter, WriteRequest
from mecdp.store import open_store


def _request(source: str, ids: list[str]) -> WriteRequest:
    now = datetime.now(UTC).replace(tzinfo=None)
    messages = [
        AcceptedMessage(index=n, message_id=i, event_time=now, payload="{}")
        for n, i in enumerate(ids)
    ]
    return WriteRequest(source_id=source, messages=messages, received_at=now, received=len(ids))


def test_replays_are_dropped_in_memory_and_after_the_window_is_gone(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.duckdb")
    writer = RawLogWriter(store)
    writer.start()
    try:
        first = writer.write_blocking(_request("web", ["a", "b", "c"]))
        assert (first.accepted, first.duplicates) == (3, 0)
        replay = writer.write_blocking(_request("web", ["b", "c", "d"]))
        assert (replay.accepted, replay.duplicates) == (1, 2)
        writer._recent.clear()  # as after a restart: only the primary key knows
        old = writer.write_blocking(_request("web", ["a", "d", "e"]))
        assert (old.accepted, old.duplicates) == (1, 2)
        other_source = writer.write_blocking(_request("app", ["a"]))
        assert other_source.accepted == 1
    finally:
        writer.stop()
    rows = (
        store.cursor()
        .execute(
            "SELECT source_id, message_id, count(*) FROM raw_events GROUP BY ALL ORDER BY 1, 2"
        )
        .fetchall()
    )
    assert rows == [("app", "a", 1)] + [("web", m, 1) for m in "abcde"]
    logged = (
        store.cursor()
        .execute("SELECT sum(accepted), sum(duplicates) FROM ingest_log WHERE source_id = 'web'")
        .fetchone()
    )
    assert logged == (5, 4)


def test_an_arrival_counts_until_it_writes(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.duckdb")
    writer = RawLogWriter(store, gather_ms=50)
    writer.start()
    try:
        arrival = writer.arrival()
        assert writer.arriving == 1  # a commit would wait (briefly) for this request
        result = asyncio.run(arrival.write(_request("web", ["a"])))
        assert (writer.arriving, result.accepted) == (0, 1)
        arrival.end()  # ending twice (the handler's finally) changes nothing
        assert writer.arriving == 0
    finally:
        writer.stop()

"""Group commit to the raw log: one writer thread, one transaction for all pending requests.

Request handlers put a `WriteRequest` on a queue and wait. The writer thread takes everything
queued, inserts all messages with one Arrow `INSERT`, adds the quarantine rows and one
`ingest_log` row per source, commits, and only then resolves each request. So an
acknowledgement always means "committed", and under load many requests share one commit.

Dedupe on (source, messageId): replays of recent messages (the usual SDK retry) are dropped
in memory against a bounded window of recently written ids; an older replay makes the plain
INSERT hit the primary key, and that commit is redone with `ON CONFLICT DO NOTHING RETURNING`
(about 3x slower per row, so it is kept off the common path).

`seq` is assigned here, monotonic from `max(seq)` at start. A message that turns out to be a
duplicate leaves a gap in `seq`; readers follow the order, not density. Since there is a
single writer, a reader never sees seq N+1 committed before seq N.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from mecdp.clean.rules import lit
from mecdp.collect.events import AcceptedMessage, utc_now
from mecdp.privacy.vault import Vault, seal_quarantine
from mecdp.store import Store

log = logging.getLogger("mecdp.collect.writer")

# How many recent message ids the in-memory dedupe window keeps (~100 bytes each).
RECENT_IDS = 1_000_000

_RAW_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("source_id", pa.string()),
        ("message_id", pa.string()),
        ("received_at", pa.timestamp("us")),
        ("event_time", pa.timestamp("us")),
        ("payload", pa.string()),
    ]
)
_QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("origin", pa.string()),
        ("record_kind", pa.string()),
        ("ref", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("payload", pa.string()),
        ("quarantined_at", pa.timestamp("us")),
    ]
)


@dataclass(slots=True)
class QuarantineEntry:
    """One rejected message (or body) with the rule it broke."""

    source_id: str | None
    ref: str | None
    field: str | None
    value: str | None
    rule: str
    reason: str
    payload: str | None


@dataclass(slots=True)
class WriteResult:
    accepted: int
    duplicates: int
    quarantined: int


@dataclass(slots=True)
class WriteRequest:
    """What one HTTP request asks to store. `received` counts every message in it."""

    source_id: str
    received_at: datetime
    messages: list[AcceptedMessage]
    quarantined: list[QuarantineEntry] = field(default_factory=list)
    received: int = 0
    # exactly one of these is set by the writer's submit helpers
    _loop: asyncio.AbstractEventLoop | None = None
    _future: asyncio.Future[WriteResult] | Future[WriteResult] | None = None


# The raw rows are an Arrow table in a local variable `_raw_batch`, which DuckDB's replacement
# scan finds by name: unlike register/unregister, no view is created and dropped per commit
# (each a catalog change of its own, ~20 % of a small commit's CPU).
_INSERT_RAW = "INSERT INTO raw_events BY NAME SELECT * FROM _raw_batch"
_QUARANTINE_VIEW = "_quarantine_batch"
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (source_id, origin, record_kind, ref, field, value, rule, reason, "
    f"payload, quarantined_at) SELECT * FROM {_QUARANTINE_VIEW}"
)


_STOP = object()
SWITCH_INTERVAL_S = 0.0005


class Arrival:
    """One request on its way to the writer, counted in `RawLogWriter.arriving` until it
    writes or ends."""

    __slots__ = ("_open", "_writer")

    def __init__(self, writer: RawLogWriter) -> None:
        self._writer = writer
        self._open = True
        writer.arriving += 1

    def end(self) -> None:
        if self._open:
            self._open = False
            self._writer.arriving -= 1

    async def write(self, request: WriteRequest) -> WriteResult:
        self.end()
        return await self._writer.write(request)


def _resolve_many(
    items: list[tuple[asyncio.Future[WriteResult], WriteResult | BaseException]],
) -> None:
    for fut, outcome in items:
        if fut.done():  # the handler gave up waiting
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)


class RawLogWriter:
    """The single writer of `raw_events` (plus its quarantine and ingest_log rows)."""

    def __init__(
        self,
        store: Store,
        *,
        origin: str = "http",
        vault: Vault | None = None,
        gather_ms: float = 0.0,
    ) -> None:
        self._store = store
        self._origin = origin
        # longest wait for requests already being parsed before committing without them
        self._gather_s = gather_ms / 1000
        # requests begun (`arrival`) that have not reached `write` yet; only the event loop
        # thread changes it, the writer thread only reads it
        self.arriving = 0
        # seals quarantine values and payloads (personal data) before they are written
        self._vault = vault
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._next_seq = 0
        self.listeners: list[Callable[[int], None]] = []
        self.commits = 0
        self.messages_written = 0
        self.last_seq = 0
        self.last_commit_ms = 0.0
        self.requests_committed = 0
        self.commit_seconds = 0.0
        # recently written (source, message id) keys, oldest first: the in-memory dedupe window
        self._recent: dict[tuple[str, str], None] = {}

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        row = (
            self._store.cursor().execute("SELECT coalesce(max(seq), 0) FROM raw_events").fetchone()
        )
        self.last_seq = int(row[0]) if row else 0
        self._next_seq = self.last_seq + 1
        # The event loop thread is CPU-bound under load; with the default 5 ms switch interval
        # the writer waits up to 5 ms for the GIL after every DuckDB call (a convoy). A short
        # interval keeps the commit path moving.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._thread = threading.Thread(target=self._run, name="mecdp-raw-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._thread = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # submitting ----------------------------------------------------------------------------

    def arrival(self) -> Arrival:
        """Announce a request that will probably `write` soon (call from the event loop)."""
        return Arrival(self)

    async def write(self, request: WriteRequest) -> WriteResult:
        """Queue `request` and wait until it is committed (from a running event loop)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[WriteResult] = loop.create_future()
        request._loop, request._future = loop, fut
        self._queue.put(request)
        return await fut

    def write_blocking(self, request: WriteRequest, timeout: float = 30.0) -> WriteResult:
        """Queue `request` and wait (from a plain thread)."""
        fut: Future[WriteResult] = Future()
        request._future = fut
        self._queue.put(request)
        return fut.result(timeout)

    # the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        cur = self._store.con.cursor()
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                pending: list[WriteRequest] = []
                if item is _STOP:
                    stopping = True
                else:
                    pending.append(item)
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                    else:
                        pending.append(item)
                if pending and not stopping:
                    stopping = self._gather(pending)
                if pending:
                    self._commit(cur, pending)
        finally:
            cur.close()

    def _gather(self, pending: list[WriteRequest]) -> bool:
        """Wait (at most the gather interval) for requests still being parsed, so that one
        commit, with its fixed cost, serves them all; True when a stop was queued."""
        deadline = time.monotonic() + self._gather_s
        while self.arriving > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                item = self._queue.get(timeout=min(left, 0.0005))
            except queue.Empty:
                continue
            if item is _STOP:
                return True
            pending.append(item)
        return False

    def _commit(self, cur: Any, pending: list[WriteRequest]) -> None:
        started = time.perf_counter()
        first_seq = self._next_seq
        seqs: list[int] = []
        sources: list[str] = []
        ids: list[str] = []
        received_at: list[datetime] = []
        times: list[datetime] = []
        payloads: list[str] = []
        seen: set[tuple[str, str]] = set()
        recent = self._recent
        now = utc_now()
        for req in pending:
            for msg in req.messages:
                key = (req.source_id, msg.message_id)
                if key in seen or key in recent:
                    continue
                seen.add(key)
                seqs.append(self._next_seq)
                self._next_seq += 1
                sources.append(req.source_id)
                ids.append(msg.message_id)
                received_at.append(req.received_at)
                times.append(msg.event_time)
                payloads.append(msg.payload)
        batch = (
            pa.Table.from_arrays(
                [
                    pa.array(seqs, pa.int64()),
                    pa.array(sources, pa.string()),
                    pa.array(ids, pa.string()),
                    pa.array(received_at, pa.timestamp("us")),
                    pa.array(times, pa.timestamp("us")),
                    pa.array(payloads, pa.string()),
                ],
                schema=_RAW_SCHEMA,
            )
            if seqs
            else None
        )
        try:
            try:
                # the common case: every key is new, so the counts are known before the insert
                # and the whole transaction is one DuckDB call (each call costs the GIL and
                # a fixed overhead on top of its work)
                results = self._count(pending, set(seen))
                self._run_transaction(cur, pending, results, batch, first_seq, now)
                written = len(seen)
            except duckdb.ConstraintException:
                # an old replay, beyond the in-memory window: redo with per-row conflicts
                if batch is None:  # only the raw insert can conflict
                    raise
                results, written = self._run_with_conflicts(cur, pending, batch, first_seq, now)
        except BaseException as exc:
            log.exception("raw log commit failed; %d requests answered with an error", len(pending))
            with contextlib.suppress(Exception):  # the transaction may already be aborted
                cur.execute("ROLLBACK")
            self._next_seq = first_seq
            self._resolve(pending, [exc] * len(pending))
            return
        if seqs:
            self.last_seq = seqs[-1]
        self._remember(seen)
        self.commits += 1
        self.messages_written += written
        elapsed = time.perf_counter() - started
        self.last_commit_ms = elapsed * 1000
        self.commit_seconds += elapsed
        self.requests_committed += len(pending)
        self._resolve(pending, list(results))
        if written:
            for listener in self.listeners:
                listener(self.last_seq)

    def _run_transaction(
        self,
        cur: Any,
        pending: list[WriteRequest],
        results: list[WriteResult],
        batch: pa.Table | None,
        first_seq: int,
        now: datetime,
    ) -> None:
        """Insert and commit everything in one script; raises ConstraintException on a key
        already in the table (after rolling the transaction back)."""
        statements = ["BEGIN TRANSACTION"]
        if batch is not None:
            statements.append(_INSERT_RAW)
        if self._register_quarantine(cur, pending, now):
            statements.append(_INSERT_QUARANTINE)
        statements.append(self._ingest_log_sql(pending, results, first_seq, now))
        statements.append("COMMIT")
        _raw_batch = batch  # read by name by DuckDB's replacement scan (see _INSERT_RAW)
        try:
            cur.execute(";\n".join(statements))
        except BaseException:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise

    def _run_with_conflicts(
        self,
        cur: Any,
        pending: list[WriteRequest],
        batch: pa.Table,
        first_seq: int,
        now: datetime,
    ) -> tuple[list[WriteResult], int]:
        """The slow path: `ON CONFLICT DO NOTHING RETURNING` tells which keys were new."""
        cur.execute("BEGIN TRANSACTION")
        _raw_batch = batch  # read by name by DuckDB's replacement scan (see _INSERT_RAW)
        rows = cur.execute(
            f"{_INSERT_RAW} ON CONFLICT DO NOTHING RETURNING source_id, message_id"
        ).fetchall()
        inserted = {(r[0], r[1]) for r in rows}
        written = len(inserted)
        results = self._count(pending, inserted)
        if self._register_quarantine(cur, pending, now):
            cur.execute(_INSERT_QUARANTINE)
        cur.execute(self._ingest_log_sql(pending, results, first_seq, now))
        cur.execute("COMMIT")
        return results, written

    def _remember(self, keys: set[tuple[str, str]]) -> None:
        """Keep the newest ids in the in-memory dedupe window (oldest evicted first)."""
        recent = self._recent
        for key in keys:
            recent[key] = None
        overflow = len(recent) - RECENT_IDS
        if overflow > 0:
            for key in list(itertools.islice(recent, overflow)):
                del recent[key]

    @staticmethod
    def _count(pending: list[WriteRequest], inserted: set[tuple[str, str]]) -> list[WriteResult]:
        results = []
        for req in pending:
            accepted = 0
            for msg in req.messages:
                key = (req.source_id, msg.message_id)
                if key in inserted:
                    inserted.discard(key)  # a later copy in this commit is a duplicate
                    accepted += 1
            results.append(
                WriteResult(accepted, len(req.messages) - accepted, len(req.quarantined))
            )
        return results

    def _register_quarantine(self, cur: Any, pending: list[WriteRequest], now: datetime) -> bool:
        """Register this commit's quarantine rows (sealed) as a view; False when there are none."""
        entries = [e for req in pending for e in req.quarantined]
        if not entries:
            return False
        n = len(entries)
        table = pa.Table.from_arrays(
            [
                pa.array([e.source_id for e in entries], pa.string()),
                pa.array([self._origin] * n, pa.string()),
                pa.array(["events"] * n, pa.string()),
                pa.array([e.ref for e in entries], pa.string()),
                pa.array([e.field for e in entries], pa.string()),
                pa.array([e.value for e in entries], pa.string()),
                pa.array([e.rule for e in entries], pa.string()),
                pa.array([e.reason for e in entries], pa.string()),
                pa.array([e.payload for e in entries], pa.string()),
                pa.array([now] * n, pa.timestamp("us")),
            ],
            schema=_QUARANTINE_SCHEMA,
        )
        if self._vault is not None:
            table = seal_quarantine(table, self._vault)
        # stays registered until the next commit's quarantine replaces it (a small table)
        cur.register(_QUARANTINE_VIEW, table)
        return True

    def _ingest_log_sql(
        self,
        pending: list[WriteRequest],
        results: list[WriteResult],
        first_seq: int,
        now: datetime,
    ) -> str:
        """One `ingest_log` row per source of this commit, as literal SQL (so it can share
        the transaction's single call; counts are ints, the texts are quoted)."""
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for req, res in zip(pending, results, strict=True):
            t = totals[req.source_id]
            t[0] += req.received
            t[1] += res.accepted
            t[2] += res.quarantined
            t[3] += res.duplicates
        common = f"{lit(self._origin)}, {lit(f'seq:{first_seq}')}"
        logged_at = f"TIMESTAMP {lit(now.isoformat(sep=' '))}"
        rows = ", ".join(
            f"({lit(source_id)}, {common}, {int(received)}, {int(accepted)}, "
            f"{int(quarantined)}, {int(duplicates)}, {logged_at})"
            for source_id, (received, accepted, quarantined, duplicates) in totals.items()
        )
        return (
            "INSERT INTO ingest_log (source_id, origin, ref, received, accepted, quarantined, "
            f"duplicates, logged_at) VALUES {rows}"
        )

    @staticmethod
    def _resolve(pending: list[WriteRequest], outcomes: list[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = defaultdict(list)
        for req, outcome in zip(pending, outcomes, strict=True):
            fut = req._future
            if req._loop is not None and isinstance(fut, asyncio.Future):
                by_loop[req._loop].append((fut, outcome))
            elif isinstance(fut, Future):
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve_many, items)

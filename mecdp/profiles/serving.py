"""The serving cache in front of the store: masked 360° answers and identifier resolutions.

Operational serving stays in the one store (DESIGN.md); this is a bounded in-process cache
in front of it, so a repeated masked lookup costs no DuckDB statement. It holds:

* per one_id, the masked answer of ``GET /v1/profiles/{one_id}`` as sent (JSON bytes; no
  plain personal value is kept: names and phones are already masked);
* per identifier reference (``phone:138...``), the one_id the indexed profile tables gave.

**Invalidation.** Every writer of a row a cached answer shows calls `changed` after its
write, inside its own transaction, naming what it touched (one_ids, member refs, stored
identifier values) or everything (`ALL`). `changed` drops the entries at once; but until the
writer commits, a reader's snapshot still shows the old rows and would cache them again. So
each call also writes a *mark* (a unique number) into ``profile_cache_marks`` in the writer's
transaction, and keeps the touched names pending on that mark: no entry that depends on a
pending name is filled until a reader sees the mark committed (then the pending name is
cleared, which counts as one more change, so a read that began before the commit cannot fill
either). A writer that rolls back leaves its names pending: they are simply never cached.
A fill also checks that nothing it depends on changed since the read began (a change log).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from mecdp.store import Store

MARKS = "profile_cache_marks"
# Measured: about 5 KB per person (a 3.2 KB masked answer, its phone resolution and the
# bookkeeping), so 100,000 entries hold some 400 MB; the least recently used go first.
DEFAULT_MAX_ENTRIES = 100_000
_LOG_LENGTH = 50_000
# Names pending on marks nobody has looked for yet (persons written but not read): past this
# many, a fill settles them all, so the pending set stays bounded.
_PENDING_SWEEP = 20_000

Name = tuple[str, str]  # ("one_id" | "member_ref" | "id_value", value)
ALL: None = None  # `changed(cur, ALL)`: every cached answer may have changed

_caches: weakref.WeakSet[ServingCache] = weakref.WeakSet()
_marks = itertools.count(time.time_ns())


def one_id_name(one_id: str) -> Name:
    return ("one_id", one_id)


def member_ref_name(member_ref: str) -> Name:
    return ("member_ref", member_ref)


def id_value_name(id_value: str) -> Name:
    return ("id_value", id_value)


def active() -> bool:
    """Whether a serving cache runs in this process (else `changed` has nothing to do)."""
    return bool(_caches)


def _has_marks(cur: duckdb.DuckDBPyConnection) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [MARKS]
    ).fetchone()
    return bool(row and row[0])


def changed(cur: duckdb.DuckDBPyConnection, names: Iterable[Name] | None) -> None:
    """Call after writing rows a cached lookup may show (in the writer's transaction, or
    after an autocommitted write): `names` it touched, or `ALL`. Free when no server runs."""
    caches = list(_caches)
    if not caches:
        return
    mark = next(_marks)
    if _has_marks(cur):
        cur.execute(f"INSERT INTO {MARKS} VALUES (?)", [mark])
    touched = None if names is None else frozenset(names)
    for cache in caches:
        cache.invalidate(mark, touched)


def changed_one_ids(cur: duckdb.DuckDBPyConnection, table: str) -> None:
    """`changed` for the one_ids listed in `table` (a column named ``one_id``)."""
    if not active():
        return
    rows = cur.execute(f"SELECT DISTINCT one_id FROM {table}").fetchall()
    changed(cur, [one_id_name(str(r[0])) for r in rows])


@dataclass(frozen=True, slots=True)
class _Entry:
    value: str | bytes
    names: frozenset[Name]


class ServingCache:
    """One server's cache (see the module docstring); thread-safe."""

    def __init__(self, store: Store, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        cur = store.cursor()
        cur.execute(f"CREATE TABLE IF NOT EXISTS {MARKS} (mark BIGINT NOT NULL)")
        cur.execute(f"DELETE FROM {MARKS}")  # marks of an earlier run are all committed
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._by_name: dict[Name, set[tuple[str, str]]] = {}
        self._pending: dict[Name, set[int]] = {}
        self._pending_all: set[int] = set()
        self._log: deque[tuple[int, frozenset[Name] | None]] = deque(maxlen=_LOG_LENGTH)
        self.seq = 0  # changes seen; a reader notes it before reading
        _caches.add(self)

    # ------------------------------------------------------------------ reads

    def answer(self, one_id: str) -> bytes | None:
        """The masked answer of `one_id`, or None."""
        value = self._hit(("view", one_id))
        return value if isinstance(value, bytes) else None

    def person(self, ref: str) -> str | None:
        """The one_id an identifier reference resolved to, or None."""
        value = self._hit(("ref", ref))
        return value if isinstance(value, str) else None

    def _hit(self, key: tuple[str, str]) -> str | bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)  # least recently used go first
            return entry.value

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ fills

    def remember_answer(
        self, cur: duckdb.DuckDBPyConnection, one_id: str, body: bytes, member_ref: str, seq: int
    ) -> None:
        """Keep `one_id`'s masked answer, read after `seq` was noted."""
        names = frozenset({one_id_name(one_id), member_ref_name(member_ref)})
        self._fill(cur, ("view", one_id), _Entry(body, names), seq)

    def remember_person(
        self,
        cur: duckdb.DuckDBPyConnection,
        ref: str,
        one_id: str,
        stored_values: Iterable[str],
        seq: int,
    ) -> None:
        """Keep what identifier reference `ref` resolved to (through `stored_values`)."""
        names = frozenset({one_id_name(one_id), *(id_value_name(v) for v in stored_values)})
        self._fill(cur, ("ref", ref), _Entry(one_id, names), seq)

    def _fill(
        self, cur: duckdb.DuckDBPyConnection, key: tuple[str, str], entry: _Entry, seq: int
    ) -> None:
        with self._lock:
            if self._changed_since(seq, entry.names):
                return
            own = set(self._pending_all)
            for name in entry.names:
                own |= self._pending.get(name, set())
            others = set[int]()
            if len(self._pending) > _PENDING_SWEEP:
                others = others.union(*self._pending.values())
        if own or others:
            self._settle(cur, own | others)
        if own:
            return  # the next read (after the settle) may fill
        with self._lock:
            if self._changed_since(seq, entry.names):
                return
            self._store(key, entry)

    def _changed_since(self, seq: int, names: frozenset[Name]) -> bool:
        if self.seq == seq:
            return False
        if not self._log or self._log[0][0] > seq + 1:
            return True  # the log no longer reaches back to the read
        for at, touched in reversed(self._log):
            if at <= seq:
                break
            if touched is None or not touched.isdisjoint(names):
                return True
        return False

    def _store(self, key: tuple[str, str], entry: _Entry) -> None:
        self._drop(key)
        self._entries[key] = entry
        for name in entry.names:
            self._by_name.setdefault(name, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for name in entry.names:
            keys = self._by_name.get(name)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_name[name]

    def _settle(self, cur: duckdb.DuckDBPyConnection, pending: set[int]) -> None:
        """Clear the pending marks this reader sees committed."""
        rows = cur.execute(
            f"SELECT mark FROM {MARKS} WHERE mark IN (SELECT unnest(?::BIGINT[]))",
            [sorted(pending)],
        ).fetchall()
        committed = {int(r[0]) for r in rows}
        if not committed:
            return
        with self._lock:
            cleared: set[Name] = set()
            for name, marks in list(self._pending.items()):
                if marks & committed:
                    marks -= committed
                    cleared.add(name)
                    if not marks:
                        del self._pending[name]
            everything = bool(self._pending_all & committed)
            self._pending_all -= committed
            # a read that began before the commit must not fill: count it as a change
            self._record(None if everything else frozenset(cleared))

    # ------------------------------------------------------------------ invalidation

    def _record(self, touched: frozenset[Name] | None) -> None:
        self.seq += 1
        self._log.append((self.seq, touched))

    def invalidate(self, mark: int, touched: frozenset[Name] | None) -> None:
        """Drop what `touched` (None: everything) may have changed; pending on `mark`."""
        with self._lock:
            self._record(touched)
            if touched is None:
                self._entries.clear()
                self._by_name.clear()
                self._pending_all.add(mark)
                return
            for name in touched:
                for key in list(self._by_name.get(name, ())):
                    self._drop(key)
                self._pending.setdefault(name, set()).add(mark)

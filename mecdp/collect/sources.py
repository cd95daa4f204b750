"""Source registry: each data source has a channel, a kind, a mapping and a write key.

Write keys only authorise collection (they can write, never read).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from mecdp.clean.codes import CHANNELS
from mecdp.clean.kinds import RECORD_KINDS
from mecdp.errors import Conflict, InputError, NotFound

SOURCE_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
EVENT_KIND = "events"


@dataclass(frozen=True)
class Source:
    source_id: str
    name: str
    channel: str
    kind: str
    mapping: str | None
    write_key: str
    created_at: datetime

    def public(self) -> dict[str, object]:
        """The source without its write key."""
        return {
            "source_id": self.source_id,
            "name": self.name,
            "channel": self.channel,
            "kind": self.kind,
            "mapping": self.mapping,
            "created_at": self.created_at.isoformat(),
        }


_COLUMNS = "source_id, name, channel, kind, mapping, write_key, created_at"


def _row_to_source(row: tuple[object, ...]) -> Source:
    return Source(*row)  # type: ignore[arg-type]


def add_source(
    cur: duckdb.DuckDBPyConnection,
    source_id: str,
    *,
    channel: str,
    kind: str = EVENT_KIND,
    mapping: str | None = None,
    name: str | None = None,
) -> Source:
    """Register a source and mint its write key."""
    if not SOURCE_ID.match(source_id):
        raise InputError(
            f"source name {source_id!r} must be 2-63 characters of a-z, 0-9 and _, "
            "starting with a letter",
            field="name",
            value=source_id,
            rule="source.name",
        )
    if channel not in CHANNELS:
        raise InputError(
            f"unknown channel {channel!r}; one of: {', '.join(CHANNELS)}",
            field="channel",
            value=channel,
            rule="source.channel",
        )
    if kind != EVENT_KIND and kind not in RECORD_KINDS:
        raise InputError(
            f"unknown source kind {kind!r}; one of: {EVENT_KIND}, {', '.join(RECORD_KINDS)}",
            field="kind",
            value=kind,
            rule="source.kind",
        )
    if cur.execute("SELECT 1 FROM sources WHERE source_id = ?", [source_id]).fetchone():
        raise Conflict(f"source {source_id!r} already exists", field="name", value=source_id)
    source = Source(
        source_id=source_id,
        name=name or source_id,
        channel=channel,
        kind=kind,
        mapping=mapping,
        write_key="wk_" + secrets.token_urlsafe(24),
        created_at=datetime.now(UTC).replace(tzinfo=None),
    )
    cur.execute(
        f"INSERT INTO sources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            source.source_id,
            source.name,
            source.channel,
            source.kind,
            source.mapping,
            source.write_key,
            source.created_at,
        ],
    )
    return source


def list_sources(cur: duckdb.DuckDBPyConnection) -> list[Source]:
    rows = cur.execute(f"SELECT {_COLUMNS} FROM sources ORDER BY source_id").fetchall()
    return [_row_to_source(r) for r in rows]


def get_source(cur: duckdb.DuckDBPyConnection, source_id: str) -> Source:
    row = cur.execute(f"SELECT {_COLUMNS} FROM sources WHERE source_id = ?", [source_id]).fetchone()
    if row is None:
        raise NotFound(f"no source named {source_id!r}", field="source", value=source_id)
    return _row_to_source(row)


def source_by_write_key(cur: duckdb.DuckDBPyConnection, write_key: str) -> Source | None:
    row = cur.execute(f"SELECT {_COLUMNS} FROM sources WHERE write_key = ?", [write_key]).fetchone()
    return _row_to_source(row) if row else None


def ensure_source(
    cur: duckdb.DuckDBPyConnection,
    source_id: str,
    *,
    channel: str,
    kind: str = EVENT_KIND,
    mapping: str | None = None,
) -> Source:
    """The source if it exists, else a new one (used by the demo and file imports)."""
    try:
        return get_source(cur, source_id)
    except NotFound:
        return add_source(cur, source_id, channel=channel, kind=kind, mapping=mapping)

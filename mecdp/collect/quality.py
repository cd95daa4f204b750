"""Data quality per source: received, accepted, quarantined by reason, duplicates, fill rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from mecdp.clean.kinds import RECORD_KINDS

# Columns that are bookkeeping, not data a source fills.
_BOOKKEEPING = {"record_id", "source_id", "ingested_at", "seq", "received_at"}


@dataclass
class SourceQuality:
    source_id: str
    channel: str
    kind: str
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    fill_rate: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def _table_of(kind: str) -> str:
    if kind == "events":
        return "events"
    table = RECORD_KINDS[kind].table
    return table or "contacts"


def _fill_rates(cur: duckdb.DuckDBPyConnection, table: str, source_id: str) -> dict[str, float]:
    columns = [
        str(r[0])
        for r in cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        if r[0] not in _BOOKKEEPING
    ]
    counts = ", ".join(f'count("{c}")' for c in columns)
    row = cur.execute(
        f"SELECT count(*), {counts} FROM {table} WHERE source_id = ?", [source_id]
    ).fetchone()
    if not row or not row[0]:
        return {}
    total = int(row[0])
    return {c: round(int(n) / total, 4) for c, n in zip(columns, row[1:], strict=True)}


def quality_report(cur: duckdb.DuckDBPyConnection) -> list[SourceQuality]:
    """One entry per registered source, in name order."""
    report = {
        str(sid): SourceQuality(str(sid), str(channel), str(kind))
        for sid, channel, kind in cur.execute(
            "SELECT source_id, channel, kind FROM sources ORDER BY source_id"
        ).fetchall()
    }
    for sid, received, accepted, quarantined, duplicates in cur.execute(
        "SELECT source_id, sum(received), sum(accepted), sum(quarantined), sum(duplicates) "
        "FROM ingest_log GROUP BY source_id"
    ).fetchall():
        if sid in report:
            q = report[sid]
            q.received, q.accepted = int(received), int(accepted)
            q.quarantined, q.duplicates = int(quarantined), int(duplicates)
    for sid, rule, n in cur.execute(
        "SELECT source_id, rule, count(DISTINCT coalesce(ref, quarantine_id::VARCHAR)) "
        "FROM quarantine GROUP BY ALL ORDER BY 1, 3 DESC"
    ).fetchall():
        if sid in report:
            report[sid].quarantined_by_rule[str(rule)] = int(n)
    for q in report.values():
        q.fill_rate = _fill_rates(cur, _table_of(q.kind), q.source_id)
    return list(report.values())

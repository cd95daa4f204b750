"""Tier migration between two moments, read from the tag history (DuckDB).

Every layer the compute run keeps as a tag (the value tier 高价值/潜力/休眠, RFM groups,
behaviour tiers, rule tags such as 沉睡) leaves a row in ``customer_tag_history`` whenever a
member's value changes (gained, changed, lost). A member's value of a tag at a moment is the
value of their latest history row with ``changed_at <= moment`` (NULL when that row is a
loss, or when there is none).

* `migration_matrix(cur, tag_id, start, end)`: counts of members from their value at
  `start` to their value at `end`, with None for "without the tag"; members without the
  tag at both moments are left out.
* `became(cur, tag_id, value, start, end)`: the members who gained `value` in
  ``(start, end]`` ("who became 沉睡 this month"); the interval matches the matrix: a change
  at exactly `start` is already part of the state at `start`.

Example:
    >>> import duckdb
    >>> from mecdp.store.duckdb_store import migrate
    >>> cur = duckdb.connect()
    >>> _ = migrate(cur)
    >>> m = migration_matrix(cur, "value_tier", datetime(2025, 1, 1), datetime(2025, 2, 1))
    >>> m.total, m.values
    (0, (None,))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from mecdp.errors import InputError

Value = str | None  # a tag value; None: without the tag


@dataclass(frozen=True)
class MigrationMatrix:
    """Members by (value at start, value at end) of one tag."""

    tag_id: str
    start: datetime
    end: datetime
    values: tuple[Value, ...]  # row and column order, None (without the tag) last
    counts: dict[tuple[Value, Value], int]

    def count(self, from_value: Value, to_value: Value) -> int:
        return self.counts.get((from_value, to_value), 0)

    def matrix(self) -> list[list[int]]:
        """Rows: value at start; columns: value at end (both in `values` order)."""
        return [[self.count(a, b) for b in self.values] for a in self.values]

    def row_totals(self) -> list[int]:
        return [sum(row) for row in self.matrix()]

    def column_totals(self) -> list[int]:
        return [sum(col) for col in zip(*self.matrix(), strict=True)]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def moved(self) -> int:
        """Members whose value at end differs from their value at start."""
        return sum(n for (a, b), n in self.counts.items() if a != b)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready shape for the API and console."""
        return {
            "tag_id": self.tag_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "values": list(self.values),
            "matrix": self.matrix(),
            "row_totals": self.row_totals(),
            "column_totals": self.column_totals(),
            "total": self.total,
            "moved": self.moved,
        }


def _check_interval(start: datetime, end: datetime) -> None:
    if start > end:
        raise InputError(
            f"start {start.isoformat()} is after end {end.isoformat()}",
            field="start",
            rule="interval",
        )


def migration_matrix(
    cur: duckdb.DuckDBPyConnection,
    tag_id: str,
    start: datetime,
    end: datetime,
    values: Sequence[str] | None = None,
) -> MigrationMatrix:
    """From-value x to-value counts of `tag_id` between `start` and `end`.

    `values` fixes the order of the values (e.g. high_value, potential, dormant; values
    seen but not listed follow, sorted); None (without the tag) always comes last.
    """
    _check_interval(start, end)
    found = cur.execute(
        """
        SELECT from_value, to_value, count(*) AS members
        FROM (
            SELECT one_id,
                   arg_max_null(value, changed_at) FILTER (WHERE changed_at <= $start)
                       AS from_value,
                   arg_max_null(value, changed_at) AS to_value
            FROM customer_tag_history
            WHERE tag_id = $tag_id AND changed_at <= $end
            GROUP BY one_id
        ) member
        WHERE from_value IS NOT NULL OR to_value IS NOT NULL
        GROUP BY from_value, to_value
        """,
        {"tag_id": tag_id, "start": start, "end": end},
    ).fetchall()
    counts: dict[tuple[Value, Value], int] = {(a, b): int(n) for a, b, n in found}
    listed = list(values or ())
    seen = {v for pair in counts for v in pair if v is not None}
    order: tuple[Value, ...] = (*listed, *sorted(seen - set(listed)), None)
    return MigrationMatrix(tag_id, start, end, order, counts)


def became(
    cur: duckdb.DuckDBPyConnection,
    tag_id: str,
    value: str | None,
    start: datetime,
    end: datetime,
) -> list[str]:
    """one_ids that gained `value` of `tag_id` (any value when None) in ``(start, end]``."""
    _check_interval(start, end)
    rows = cur.execute(
        """
        SELECT DISTINCT one_id FROM customer_tag_history
        WHERE tag_id = $tag_id AND change IN ('gained', 'changed')
          AND value IS NOT NULL AND ($value IS NULL OR value = $value)
          AND changed_at > $start AND changed_at <= $end
        ORDER BY one_id
        """,
        {"tag_id": tag_id, "value": value, "start": start, "end": end},
    ).fetchall()
    return [str(r[0]) for r in rows]

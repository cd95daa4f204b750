"""Tier migration matrix and "who became X" from the tag history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import pytest

from mecdp.compute.migration import became, migration_matrix
from mecdp.errors import InputError
from mecdp.store.duckdb_store import migrate

RUN1, RUN2, RUN3 = datetime(2024, 1, 1), datetime(2024, 2, 1), datetime(2024, 3, 1)
TIERS = ("high_value", "potential", "dormant")

# (one_id, tag_id, change, value, previous_value, changed_at)
HISTORY = [
    ("a", "value_tier", "gained", "high_value", None, RUN1),
    ("b", "value_tier", "gained", "potential", None, RUN1),
    ("c", "value_tier", "gained", "dormant", None, RUN1),
    ("d", "value_tier", "gained", "potential", None, RUN1),
    ("a", "value_tier", "changed", "dormant", "high_value", RUN2),
    ("b", "value_tier", "changed", "high_value", "potential", RUN2),
    ("d", "value_tier", "lost", None, "potential", RUN2),
    ("e", "value_tier", "gained", "potential", None, RUN2),
    ("c", "value_tier", "lost", None, "dormant", RUN3),
    ("f", "value_tier", "gained", "dormant", None, RUN3),
    ("a", "value_tier", "changed", "potential", "dormant", RUN3),
    # another tag: never mixed in
    ("a", "dormant", "gained", "true", None, RUN1),
    ("g", "dormant", "gained", "true", None, RUN2),
]


@pytest.fixture
def cur() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    migrate(con)
    con.executemany("INSERT INTO customer_tag_history VALUES (?, ?, ?, ?, ?, 1, ?, 'run')", HISTORY)
    yield con
    con.close()


def test_members_move_between_tiers_and_appear_or_disappear(
    cur: duckdb.DuckDBPyConnection,
) -> None:
    m = migration_matrix(cur, "value_tier", datetime(2024, 1, 15), datetime(2024, 2, 15), TIERS)
    assert m.values == ("high_value", "potential", "dormant", None)
    assert m.counts == {
        ("high_value", "dormant"): 1,  # a
        ("potential", "high_value"): 1,  # b
        ("dormant", "dormant"): 1,  # c stays
        ("potential", None): 1,  # d lost the tag
        (None, "potential"): 1,  # e appeared; f only gains after the end
    }
    assert m.matrix() == [
        [0, 0, 1, 0],
        [1, 0, 0, 1],
        [0, 0, 1, 0],
        [0, 1, 0, 0],
    ]
    assert m.row_totals() == [1, 2, 1, 1]
    assert m.column_totals() == [1, 1, 2, 1]
    assert (m.total, m.moved) == (5, 4)
    assert m.to_dict()["values"] == ["high_value", "potential", "dormant", None]


def test_a_change_at_exactly_start_belongs_to_the_start_state(
    cur: duckdb.DuckDBPyConnection,
) -> None:
    m = migration_matrix(cur, "value_tier", RUN2, RUN3)
    assert m.values == ("dormant", "high_value", "potential", None)  # sorted when not given
    assert m.counts == {
        ("dormant", "potential"): 1,  # a
        ("high_value", "high_value"): 1,  # b
        ("dormant", None): 1,  # c lost at the end moment itself
        ("potential", "potential"): 1,  # e
        (None, "dormant"): 1,  # f
    }  # d: without the tag at both moments, left out


def test_before_any_history_everyone_starts_without_the_tag(
    cur: duckdb.DuckDBPyConnection,
) -> None:
    m = migration_matrix(cur, "value_tier", datetime(2023, 1, 1), RUN1, TIERS)
    assert m.counts == {(None, "high_value"): 1, (None, "potential"): 2, (None, "dormant"): 1}
    empty = migration_matrix(cur, "no_such_tag", RUN1, RUN3)
    assert (empty.values, empty.matrix(), empty.total) == ((None,), [[0]], 0)


def test_became_lists_members_who_gained_the_value(cur: duckdb.DuckDBPyConnection) -> None:
    assert became(cur, "value_tier", "dormant", datetime(2024, 1, 15), datetime(2024, 2, 15)) == [
        "a"
    ]
    # (start, end]: c gained at RUN1 = start is left out, f at RUN3 = end is in
    assert became(cur, "value_tier", "dormant", RUN1, RUN3) == ["a", "f"]
    assert became(cur, "dormant", "true", RUN1, RUN3) == ["g"]
    assert became(cur, "value_tier", None, RUN1, RUN2) == ["a", "b", "e"]
    assert became(cur, "value_tier", "gold", RUN1, RUN3) == []


def test_start_after_end_is_refused(cur: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(InputError, match="after end"):
        migration_matrix(cur, "value_tier", RUN3, RUN1)
    with pytest.raises(InputError, match="after end"):
        became(cur, "value_tier", "dormant", RUN3, RUN1)

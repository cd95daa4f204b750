"""Expert (SQL) tags: the sandbox refuses what is not one read-only SELECT over the
documented inputs, the time limit interrupts a slow query, and results come back as
``cm_out_tags`` rows."""

from __future__ import annotations

from typing import Any

import pytest
from compute.test_tag_factories import AS_OF, Clinic, ago, definition

from mecdp.compute import tags
from mecdp.compute.tag_sandbox import check_expert_sql
from mecdp.errors import InputError
from mecdp.store.engine import DuckDBEngine


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP TABLE cm_orders", "only a SELECT query is allowed, not DROP"),
        ("INSERT INTO scores SELECT * FROM scores", "only a SELECT query is allowed, not INSERT"),
        ("COPY cm_members TO '/tmp/members.csv'", "only a SELECT query is allowed, not COPY"),
        ("ATTACH '/tmp/other.duckdb' AS other", "only a SELECT query is allowed, not ATTACH"),
        ("SELECT one_id FROM cm_members; SELECT 1", "one statement expected, got 2"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv is not allowed"),
        ("SELECT * FROM '/etc/passwd.csv'", "table '/etc/passwd.csv' is not an allowed input"),
        ("SELECT one_id FROM profiles", "table 'profiles' is not an allowed input"),
        ("SELECT one_id FROM main.cm_members", "names a schema or database"),
        ("SELECT one_id, read_text('/etc/hosts') AS value FROM cm_members", "function read_text"),
        ("SELECT one_id, getenv('HOME') AS value FROM cm_members", "function getenv"),
        ("SELECT * FROM query('DROP TABLE scores')", "table function query is not allowed"),
        ("SELECT one_id FROM cm_members WHERE", "cannot parse"),
    ],
)
def test_the_sandbox_refuses_with_the_reason(sql: str, reason: str) -> None:
    with pytest.raises(InputError, match="expert SQL: ") as caught:
        check_expert_sql(sql)
    assert reason in str(caught.value)
    assert caught.value.field == "rule.sql"


def test_the_sandbox_accepts_ctes_unions_and_params() -> None:
    sql = (
        "WITH recent AS (SELECT one_id FROM cm_orders o, params p "
        "WHERE o.ordered_at >= p.as_of - INTERVAL 30 DAY) "
        "SELECT one_id FROM recent UNION SELECT one_id FROM customer_tags WHERE tag_id = 'x'"
    )
    assert "UNION" in check_expert_sql(sql)


@pytest.fixture(scope="module")
def engine() -> DuckDBEngine:
    c = Clinic()
    c.order(c.member("a"), ago(3), 100, item="SKN01")
    c.order("a", ago(40), 300, item="HA01")
    c.order(c.member("b"), ago(10), 800, item="IPL01")
    c.member("c")
    return c.engine()


def _expert(sql: str, value_type: str = "boolean", **rule: Any) -> Any:
    return definition({"kind": "sql", "sql": sql, **rule}, value_type, tag_id="expert")


def _rows(engine: DuckDBEngine, sql: str, value_type: str = "boolean") -> dict[str, str]:
    out = tags.run_expert_tag(engine.con, _expert(sql, value_type), AS_OF)
    assert out.schema == tags.TAGS_SCHEMA
    assert set(out.column("tag_id").to_pylist()) <= {"expert"}
    return dict(zip(out.column("one_id").to_pylist(), out.column("value").to_pylist(), strict=True))


def test_expert_tags_of_each_value_type(engine: DuckDBEngine) -> None:
    recent = (
        "SELECT one_id FROM cm_orders, params "
        "WHERE date_diff('day', CAST(ordered_at AS DATE), as_of_date) <= 7"
    )
    assert _rows(engine, recent) == {"a": "true"}
    flagged = "SELECT one_id, paid_fen > 50000 AS value FROM cm_orders WHERE item_code <> 'HA01'"
    assert _rows(engine, flagged) == {"b": "true"}  # false values give no row
    spend = "SELECT one_id, avg(paid_fen) / 3 AS value FROM cm_orders GROUP BY one_id"
    assert _rows(engine, spend, "number") == {"a": "6666.6667", "b": "26666.6667"}
    band = "SELECT one_id, max(category) AS value FROM cm_orders GROUP BY one_id"
    assert _rows(engine, band, "enum") == {"a": "皮肤管理", "b": "光电"}
    unknown = "SELECT 'ghost' AS one_id UNION ALL SELECT 'c'"
    assert _rows(engine, unknown) == {"c": "true"}  # only members of the run


@pytest.mark.parametrize(
    ("sql", "value_type", "reason"),
    [
        ("SELECT city FROM cm_members", "boolean", "must return a one_id column"),
        ("SELECT one_id FROM cm_members", "number", "must return a value column"),
        ("SELECT one_id, 'lots' AS value FROM cm_members", "number", "value 'lots' of "),
        ("SELECT one_id, paid_fen AS value FROM cm_orders", "number", "gives a 2 different values"),
        ("SELECT one_id, nosuch AS value FROM cm_members", "enum", "the query failed"),
    ],
)
def test_expert_results_are_checked(
    engine: DuckDBEngine, sql: str, value_type: str, reason: str
) -> None:
    with pytest.raises(InputError) as caught:
        tags.run_expert_tag(engine.con, _expert(sql, value_type), AS_OF)
    assert reason in str(caught.value) and "tag 'expert'" in str(caught.value)


def test_the_time_limit_interrupts_a_slow_query() -> None:
    c = Clinic()
    c.member("a")
    for day in range(100):
        c.order("a", ago(day), 100 + day, item="SKN01")
    engine = c.engine()
    slow = (
        "SELECT a.one_id FROM cm_orders a, cm_orders b, cm_orders c, cm_orders d, cm_orders e "
        "WHERE a.paid_fen + b.paid_fen + c.paid_fen + d.paid_fen + e.paid_fen = -1"
    )
    with pytest.raises(InputError, match="longer than its time limit of 0.3 s") as caught:
        tags.run_expert_tag(engine.con, _expert(slow, timeout_s=0.3), AS_OF, timeout_s=60)
    assert caught.value.rule == "tags.sql_timeout"
    # the connection is usable afterwards
    assert engine.fetch_arrow("SELECT count(*) AS n FROM cm_orders").to_pylist() == [{"n": 100}]


def test_preview_of_an_expert_tag(engine: DuckDBEngine) -> None:
    found = tags.preview(engine, _expert("SELECT one_id FROM cm_orders"), AS_OF)
    assert (found.count, found.sample_one_ids, found.value_counts) == (2, ["a", "b"], {})

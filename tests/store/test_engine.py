"""The engine seam: the same DuckDB-dialect SQL runs on DuckDB and on Spark."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest

from mecdp.store.engine import (
    DuckDBEngine,
    Engine,
    ScalarUdf,
    SparkEngine,
    SqlStep,
    pipeline_sql,
)


def shout(value: str) -> str:
    return value.upper() + "!"


def exercise(engine: Engine) -> list[dict[str, Any]]:
    engine.register_arrow("people", pa.table({"name": ["li", None, "wang"], "n": [1, 2, 3]}))
    engine.register_udf(ScalarUdf("shout", shout, "VARCHAR"))
    engine.run_pipeline(
        [
            SqlStep("SELECT name, n FROM people", "base"),
            SqlStep(
                "SELECT n, shout(name) AS loud, TRY_CAST(name AS INTEGER) AS bad_cast, "
                "mecdp_add_micros(TIMESTAMP '2024-03-05 00:00:00', n * 3600000000) AS at "
                "FROM base",
                "out",
            ),
        ],
        "result",
    )
    assert engine.columns("result") == ["n", "loud", "bad_cast", "at"]
    rows = engine.fetch_arrow("SELECT * FROM result ORDER BY n").to_pylist()
    engine.drop("result")
    return rows


def test_pipeline_chains_steps_as_ctes() -> None:
    sql = pipeline_sql([SqlStep("SELECT 1 AS x", "a"), SqlStep("SELECT x FROM a", "b")])
    assert sql == "WITH a AS (\nSELECT 1 AS x\n)\nSELECT x FROM a"
    with pytest.raises(ValueError, match="at least one step"):
        pipeline_sql([])


def test_duckdb_engine_runs_pipeline_udf_and_templates() -> None:
    engine = DuckDBEngine(duckdb.connect())
    rows = exercise(engine)
    assert [r["loud"] for r in rows] == ["LI!", None, "WANG!"]
    assert [r["bad_cast"] for r in rows] == [None, None, None]
    assert str(rows[1]["at"]) == "2024-03-05 02:00:00"
    # a UDF can be registered again (e.g. with a new key) without error
    engine.register_udf(ScalarUdf("shout", str.lower, "VARCHAR"))
    assert engine.fetch_arrow("SELECT shout('AB') AS s").to_pylist() == [{"s": "ab"}]
    assert engine.count("people") == 3


def test_drop_is_quiet_for_missing_tables() -> None:
    engine = DuckDBEngine(duckdb.connect())
    engine.drop("nothing_here")
    engine.create_table_as("t", "SELECT 1 AS x")
    engine.drop("t")
    with pytest.raises(duckdb.CatalogException):
        engine.fetch_arrow("SELECT * FROM t")


def test_spark_translation_uses_spark_spelling() -> None:
    engine = SparkEngine.__new__(SparkEngine)  # translation needs no session
    sql = engine.translate(
        "SELECT regexp_matches(x, '^\\d+$'), mecdp_byte_length(x), "
        "mecdp_add_micros(TIMESTAMP '2024-01-01 00:00:00', 5) FROM t"
    )
    assert "RLIKE" in sql
    assert "OCTET_LENGTH((x))" in sql
    assert "DATE_ADD(MICROSECOND" in sql  # Spark spells TIMESTAMPADD so
    assert "TIMESTAMP_NTZ" in sql


@pytest.mark.spark
def test_spark_engine_gives_the_same_rows(spark_session: Any) -> None:
    expected = exercise(DuckDBEngine(duckdb.connect()))
    assert exercise(SparkEngine(spark_session)) == expected

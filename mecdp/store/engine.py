"""The engine seam: batch SQL is written once (DuckDB dialect) and runs on DuckDB or Spark.

SQL is built as data (`SqlStep`s chained as CTEs, as in Splink's pipeline) and each engine
turns it into its own dialect with SQLGlot. Engine differences live here only:

- `Dialect`: the SQLGlot dialect name plus a small map of function templates for the few
  portable helpers SQLGlot cannot transpile (`mecdp_add_micros`, `mecdp_byte_length`).
  Write them in the SQL like any function; each dialect expands them.
- `ScalarUdf`: a Python function registered the same way on both engines (DuckDB arrow
  function, Spark pandas UDF). Use UDFs only where SQL cannot do the job.

Spark runs with ANSI mode on (the Spark 4 default, `spark.sql.ansi.enabled=true`): an
invalid cast raises instead of silently giving NULL, so the shared SQL must use `TRY_CAST`
wherever a value may be bad; both engines then give NULL for bad values.

Example:
    >>> import duckdb
    >>> engine = DuckDBEngine(duckdb.connect())
    >>> engine.run_pipeline(
    ...     [SqlStep("SELECT 1 AS x", "a"), SqlStep("SELECT x + 1 AS y FROM a", "b")], "out"
    ... )
    >>> engine.fetch_arrow("SELECT y FROM out").to_pylist()
    [{'y': 2}]
"""

from __future__ import annotations

import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class SqlStep:
    """One step of a pipeline: a SELECT (DuckDB dialect) whose result later steps call
    `output_table_name`."""

    sql: str
    output_table_name: str


def pipeline_sql(steps: Sequence[SqlStep]) -> str:
    """Chain `steps` as CTEs; the last step is the final SELECT."""
    if not steps:
        raise ValueError("a pipeline needs at least one step")
    *ctes, last = steps
    if not ctes:
        return last.sql
    with_clause = ",\n".join(f"{s.output_table_name} AS (\n{s.sql}\n)" for s in ctes)
    return f"WITH {with_clause}\n{last.sql}"


# --- dialects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """How one engine spells SQL: SQLGlot dialect plus templates for portable helpers.

    A template is SQL in the target dialect with `{0}`, `{1}`... for the arguments.
    """

    name: str
    templates: dict[str, str] = field(default_factory=dict)

    def translate(self, sql: str, *, pretty: bool = False) -> str:
        """Turn DuckDB-dialect SQL into this dialect, expanding the helper templates."""
        tree = sqlglot.parse_one(sql, read="duckdb")
        templates = self.templates

        def expand(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Anonymous) and str(node.this).lower() in templates:
                args = [a.transform(expand).sql(dialect=self.name) for a in node.expressions]
                text = templates[str(node.this).lower()].format(*(f"({a})" for a in args))
                expanded: exp.Expr = sqlglot.parse_one(text, read=self.name)
                return expanded
            return node

        return tree.transform(expand).sql(dialect=self.name, pretty=pretty)


DUCKDB_DIALECT = Dialect(
    "duckdb",
    {
        # timestamp + a whole number of microseconds (BIGINT) -> TIMESTAMP
        "mecdp_add_micros": "{0} + to_microseconds(CAST({1} AS BIGINT))",
        # length of a string in UTF-8 bytes (= character length only for pure ASCII)
        "mecdp_byte_length": "strlen({0})",
    },
)
SPARK_DIALECT = Dialect(
    "spark",
    {
        "mecdp_add_micros": "TIMESTAMPADD(MICROSECOND, CAST({1} AS BIGINT), {0})",
        "mecdp_byte_length": "octet_length({0})",
    },
)


# --- UDFs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalarUdf:
    """A scalar Python function callable from the shared SQL on every engine.

    `func` maps one non-NULL value to a value or None; NULL input gives NULL without a call.
    Types are DuckDB type names (VARCHAR, BIGINT, BOOLEAN, DOUBLE).
    """

    name: str
    func: Callable[..., Any]
    return_type: str
    arg_types: tuple[str, ...] = ("VARCHAR",)


_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "BOOLEAN": pa.bool_(),
    "DOUBLE": pa.float64(),
}
_SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "BOOLEAN": "boolean", "DOUBLE": "double"}


def _vectorised(udf: ScalarUdf) -> Callable[..., list[Any]]:
    """Apply `udf.func` over columns of Python values, passing NULLs through."""
    func = udf.func

    def run(*columns: list[Any]) -> list[Any]:
        return [
            None if any(v is None for v in values) else func(*values)
            for values in zip(*columns, strict=True)
        ]

    return run


# --- engines --------------------------------------------------------------------------------


class Engine(ABC):
    """Runs DuckDB-dialect SQL on one engine. Table names are plain identifiers."""

    name: str
    dialect: Dialect

    def translate(self, sql: str) -> str:
        """The SQL as this engine runs it."""
        return self.dialect.translate(sql)

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run a statement (DuckDB dialect) for its effect."""

    @abstractmethod
    def fetch_arrow(self, sql: str) -> pa.Table:
        """Run a query (DuckDB dialect) and return its rows."""

    @abstractmethod
    def register_arrow(self, name: str, table: pa.Table) -> None:
        """Make `table` readable by SQL under `name` (replacing any previous one)."""

    @abstractmethod
    def create_table_as(self, name: str, sql: str) -> None:
        """Materialise the query's result as table `name` (replacing any previous one)."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Drop table or view `name` if it exists."""

    @abstractmethod
    def columns(self, name: str) -> list[str]:
        """Column names of table `name`, in order."""

    @abstractmethod
    def register_udf(self, udf: ScalarUdf) -> None:
        """Make `udf` callable from SQL (replacing a previous one of the same name)."""

    def run_pipeline(self, steps: Sequence[SqlStep], output: str) -> None:
        """Run `steps` as one query (each step a CTE of the next) into table `output`."""
        self.create_table_as(output, pipeline_sql(steps))

    def count(self, name: str) -> int:
        return int(self.fetch_arrow(f"SELECT count(*) AS n FROM {name}").column(0)[0].as_py())


class DuckDBEngine(Engine):
    """The embedded engine: wraps a DuckDB connection (the workspace store's, or in-memory)."""

    name = "duckdb"
    dialect = DUCKDB_DIALECT

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._udfs: dict[str, ScalarUdf] = {}
        # The helper templates become connection-local macros, so DuckDB runs the SQL as
        # written: no parse/re-render round trip (~0.5 s for a cleaning query).
        for name, template in self.dialect.templates.items():
            params = sorted(set(re.findall(r"\{(\d+)\}", template)), key=int)
            body = template.format(*(f"a{p}" for p in params))
            args = ", ".join(f"a{p}" for p in params)
            con.execute(f"CREATE OR REPLACE TEMP MACRO {name}({args}) AS {body}")

    def translate(self, sql: str) -> str:
        return sql

    def execute(self, sql: str) -> None:
        self.con.execute(self.translate(sql))

    def fetch_arrow(self, sql: str) -> pa.Table:
        return self.con.execute(self.translate(sql)).arrow().read_all()

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def create_table_as(self, name: str, sql: str) -> None:
        # Stage outputs are work tables: TEMP keeps them in memory, out of the WAL.
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS\n{self.translate(sql)}")

    def drop(self, name: str) -> None:
        kinds = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchall()
        for (kind,) in kinds:
            if kind == "VIEW":
                self.con.execute(f"DROP VIEW IF EXISTS {name}")
            elif kind == "LOCAL TEMPORARY":
                self.con.execute(f"DROP TABLE IF EXISTS temp.{name}")
            else:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
        self.con.unregister(name)

    def columns(self, name: str) -> list[str]:
        return [d[0] for d in self.con.execute(f"SELECT * FROM {name} LIMIT 0").description]

    def register_udf(self, udf: ScalarUdf) -> None:
        if self._udfs.get(udf.name) == udf:
            return  # already there
        if udf.name in self._udfs:
            self.con.remove_function(udf.name)
        run = _vectorised(udf)
        out_type = _ARROW_TYPES[udf.return_type]

        def arrow_func(*arrays: pa.Array) -> pa.Array:
            return pa.array(run(*(a.to_pylist() for a in arrays)), type=out_type)

        from duckdb.func import FunctionNullHandling, PythonUDFType

        self.con.create_function(
            udf.name,
            arrow_func,
            list(udf.arg_types),
            udf.return_type,
            type=PythonUDFType.ARROW,
            null_handling=FunctionNullHandling.SPECIAL,
            side_effects=False,
        )
        self._udfs[udf.name] = udf


class SparkEngine(Engine):
    """The scale-out engine: a Spark session; SQL transpiled with SQLGlot to Spark SQL.

    Tables are temporary views; `create_table_as` materialises with a local checkpoint so a
    table is computed once however often later steps read it.
    """

    name = "spark"
    dialect = SPARK_DIALECT

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        # Deliberate: ANSI on (invalid casts raise), the shared SQL uses TRY_CAST; UTC.
        spark.conf.set("spark.sql.ansi.enabled", "true")
        spark.conf.set("spark.sql.session.timeZone", "UTC")

    def execute(self, sql: str) -> None:
        self.spark.sql(self.translate(sql)).collect()

    def fetch_arrow(self, sql: str) -> pa.Table:
        table: pa.Table = self.spark.sql(self.translate(sql)).toArrow()
        return table

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def create_table_as(self, name: str, sql: str) -> None:
        df = self.spark.sql(self.translate(sql)).localCheckpoint(eager=True)
        df.createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def columns(self, name: str) -> list[str]:
        return list(self.spark.table(name).columns)

    def register_udf(self, udf: ScalarUdf) -> None:
        from pyspark.sql.functions import udf as spark_udf

        func = udf.func

        def row_func(*values: Any) -> Any:
            return None if any(v is None for v in values) else func(*values)

        self.spark.udf.register(
            udf.name, spark_udf(row_func, _SPARK_TYPES[udf.return_type], useArrow=False)
        )


def local_spark_session(app_name: str = "mecdp") -> Any:
    """A local Spark session for tests and single-machine runs (local[2], UTC, no UI)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the Spark engine needs pyspark: pip install 'mecdp[spark]' (and Java 17)"
        ) from exc
    # Process environment for the JVM and the Python workers Spark starts (not settings).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session

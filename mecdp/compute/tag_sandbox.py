"""The sandbox for expert (SQL) tags: what a tag's query may read and call.

A query is parsed with SQLGlot (DuckDB dialect) and accepted only when it is exactly one
SELECT (or a UNION/INTERSECT/EXCEPT of SELECTs) that reads the documented inputs
(`ALLOWED_TABLES`, plus its own CTEs and subqueries) and calls no function on the deny-list
(files, the network, settings, sequences, other databases, SQL-in-a-string). The SQL that
runs is the one re-rendered from the checked tree, so what was checked is what runs.

Example:
    >>> check_expert_sql("SELECT one_id FROM cm_orders WHERE promo")
    'SELECT one_id FROM cm_orders WHERE promo'
    >>> try:
    ...     check_expert_sql("SELECT * FROM read_csv('/etc/passwd')")
    ... except InputError as exc:
    ...     print(exc.message.split(";")[0])
    expert SQL: table function read_csv is not allowed
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from mecdp.errors import InputError

# The documented inputs: the member facts (as of the run), the previous run's scores and
# tags, the golden record's 疗程卡 balances, and `params` (one row: as_of, as_of_date).
ALLOWED_TABLES = (
    "cm_members",
    "cm_orders",
    "cm_appointments",
    "cm_treatments",
    "cm_interactions",
    "cm_events",
    "scores",
    "customer_tags",
    "profile_course_cards",
    "params",
)
# Function names (lower case) refused anywhere, by exact name or prefix: file and network
# readers, SQL-in-a-string, settings and environment, sequences, catalog and extension access.
DENIED_FUNCTIONS = frozenset(
    {
        "glob",
        "query",
        "query_table",
        "getenv",
        "current_setting",
        "set_variable",
        "nextval",
        "currval",
        "setseed",
        "checkpoint",
        "force_checkpoint",
        "json_execute_serialized_sql",
        "which_secret",
        "summary",
    }
)
DENIED_PREFIXES = (
    "read_",
    "parquet_",
    "sniff_",
    "duckdb_",
    "pragma_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "http",
    "s3",
    "write_",
    "copy_",
    "export_",
    "import_",
    "enable_",
    "disable_",
    "load_",
    "install_",
    "force_",
    "create_",
    "drop_",
    "set_",
    "reset_",
    "ducklake_",
    "azure_",
    "gcs_",
)
_STATEMENT_NAMES = (
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "Copy",
    "Attach",
    "Detach",
    "Pragma",
    "Set",
    "Use",
    "Transaction",
    "Commit",
    "Rollback",
    "Command",
    "Into",
    "Export",
    "Install",
    "Load",
)
_STATEMENTS = tuple(getattr(exp, n) for n in _STATEMENT_NAMES if hasattr(exp, n))


def _refuse(reason: str) -> InputError:
    return InputError(f"expert SQL: {reason}", field="rule.sql", rule="tags.sql_sandbox")


def function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def is_denied(name: str) -> bool:
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES) or "secret" in name


def check_expert_sql(sql: str) -> str:
    """The query as it will run (re-rendered, DuckDB dialect); InputError naming the reason
    when it is not one read-only SELECT over the allowed inputs."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as exc:
        raise _refuse(f"cannot parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise _refuse(f"one statement expected, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.SetOperation):
        raise _refuse(f"only a SELECT query is allowed, not {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _STATEMENTS):
            raise _refuse(f"{node.key.upper()} is not allowed inside a query")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    allowed = ", ".join(ALLOWED_TABLES)
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            name = function_name(table.this)
            raise _refuse(f"table function {name} is not allowed; read the inputs: {allowed}")
        if table.args.get("db") or table.args.get("catalog"):
            raise _refuse(f"table {table.sql(dialect='duckdb')} names a schema or database")
        name = table.name.lower()
        if name not in ALLOWED_TABLES and name not in ctes:
            raise _refuse(f"table {table.name!r} is not an allowed input; one of: {allowed}")
    for func in tree.find_all(exp.Func):
        name = function_name(func)
        if is_denied(name):
            raise _refuse(f"function {name} is not allowed (files, settings or side effects)")
    return tree.sql(dialect="duckdb")

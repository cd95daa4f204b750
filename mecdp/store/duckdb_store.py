"""The embedded store: one DuckDB file per workspace, schema by versioned migrations.

DuckDB lets one process own a file read-write; `Store` is that ownership. Threads share it
through `cursor()` (one cursor per thread).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from mecdp.errors import StoreBusy

MIGRATIONS_PACKAGE = "mecdp.store.migrations"


class Store:
    """An open DuckDB workspace store."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self.con = con
        self.path = path
        self._local = threading.local()
        # every per-thread cursor handed out, so `compact` can close them all
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not thread-safe)."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self.con.cursor()
            self._local.cursor = cur
            self._cursors.append(cur)
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside BEGIN/COMMIT; rolled back if the block raises."""
        cur = self.con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            cur.close()
            raise
        cur.execute("COMMIT")
        cur.close()

    def schema_version(self) -> int:
        row = self.cursor().execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def close(self) -> None:
        self.con.close()

    def compact(self) -> None:
        """Rewrite the database file so that deleted rows leave no bytes behind.

        DuckDB frees the blocks of deleted rows but does not overwrite them; copying every
        table into a fresh file (`COPY FROM DATABASE`) and swapping it in leaves no old block.
        The caller stops the threads that hold their own cursors (`con.cursor()`) first; the
        per-thread cursors of `cursor()` are closed here and recreated on next use.
        """
        if self.path is None:
            return
        for cur in self._cursors:  # per-thread cursors (an open result holds a transaction)
            cur.close()
        self._cursors.clear()
        self.con.execute("CHECKPOINT")
        self.con.close()
        fresh = self.path.with_name(self.path.name + ".compact")
        fresh.unlink(missing_ok=True)
        con = duckdb.connect(":memory:")
        try:
            old = str(self.path).replace("'", "''")
            new = str(fresh).replace("'", "''")
            con.execute(f"ATTACH '{old}' AS old_db (READ_ONLY)")
            con.execute(f"ATTACH '{new}' AS new_db")
            con.execute("COPY FROM DATABASE old_db TO new_db")
            con.execute("DETACH old_db")
            con.execute("DETACH new_db")
        finally:
            con.close()
        os.replace(fresh, self.path)
        self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
        self.con = duckdb.connect(str(self.path))
        self.con.execute("SET TimeZone = 'UTC'")
        self._local = threading.local()


def replace_table(
    cur: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    params: list[Any] | None = None,
    *,
    order_by: str | None = None,
) -> None:
    """Replace every row of `table` by the rows of `select_sql` (columns matched by name).

    A fresh table is made from the table's own DDL (types and constraints stay), filled,
    swapped in, and its indexes are built once after the load: deleting millions of rows
    instead makes DuckDB's commit take minutes. Run it inside the caller's transaction.
    `order_by` stores the rows sorted: a point read on the leading column then skips every
    row group whose min/max excludes the value, as fast as an ART index and free to keep.
    """
    if order_by:
        select_sql = f"SELECT * FROM ({select_sql}) ORDER BY {order_by}"
    ddl = cur.execute(
        "SELECT sql FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [table]
    ).fetchone()
    if ddl is None:
        raise RuntimeError(f"the store has no {table} table: run the migrations")
    indexes = [
        str(r[0])
        for r in cur.execute(
            "SELECT sql FROM duckdb_indexes() WHERE table_name = ?", [table]
        ).fetchall()
    ]
    fresh = f"{table}_fresh"
    cur.execute(f"DROP TABLE IF EXISTS {fresh}")
    cur.execute(re.sub(rf"^CREATE TABLE {table}\b", f"CREATE TABLE {fresh}", str(ddl[0])))
    cur.execute(f"INSERT INTO {fresh} BY NAME {select_sql}", params or [])
    cur.execute(f"DROP TABLE {table}")
    cur.execute(f"ALTER TABLE {fresh} RENAME TO {table}")
    for sql in indexes:
        cur.execute(sql)


def migrations() -> list[tuple[int, str, str]]:
    """The shipped migrations as (version, name, sql), in order."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not applied yet; returns the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    applied = []
    for version, name, sql in migrations():
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        con.execute(sql)
        con.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name]
        )
        con.execute("COMMIT")
        applied.append(name)
    return applied


def open_store(path: Path | None) -> Store:
    """Open (and migrate) the store at `path`; `None` opens an in-memory store."""
    try:
        con = duckdb.connect(str(path) if path else ":memory:")
    except duckdb.IOException as exc:
        raise StoreBusy(
            f"the store {path} is in use by another process (is `mecdp serve` running?)",
            path=str(path),
        ) from exc
    con.execute("SET TimeZone = 'UTC'")
    migrate(con)
    return Store(con, path)

"""The store: the DuckDB workspace file, its migrations, and the engine seam (DuckDB or Spark)."""

from mecdp.store.duckdb_store import Store, open_store

__all__ = ["Store", "open_store"]

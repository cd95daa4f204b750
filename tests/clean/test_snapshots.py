"""The generated cleaning SQL, pinned per dialect (ibis-style snapshot files).

After an intended change, regenerate with:
    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/clean/test_snapshots.py
and review the diff of tests/clean/snapshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mecdp.clean.kinds import RECORD_KINDS
from mecdp.clean.stage import CleanOptions, clean_sql
from mecdp.store.engine import DUCKDB_DIALECT, SPARK_DIALECT, Dialect

SNAPSHOTS = Path(__file__).parent / "snapshots"
# A feedback file with a few columns: small enough to read, covers most rule kinds.
COLUMNS = [
    "_row",
    "_ref",
    "response_no",
    "channel",
    "score",
    "text",
    "submitted_at",
    "phone",
    "gender",
    "id_card",
]


def generated_sql(dialect: Dialect) -> str:
    options = CleanOptions("survey_q1", b"unused", defaults={"store_code": "SH01"})
    statements = clean_sql(RECORD_KINDS["feedback"], "staged", COLUMNS, options, "fb")
    return (
        "\n\n".join(
            f"-- {name}\n{dialect.translate(sql, pretty=True)};" for name, sql in statements
        )
        + "\n"
    )


@pytest.mark.parametrize("dialect", [DUCKDB_DIALECT, SPARK_DIALECT], ids=lambda d: d.name)
def test_clean_sql_snapshot(dialect: Dialect) -> None:
    path = SNAPSHOTS / f"test_clean_sql_snapshot_{dialect.name}" / "out.sql"
    sql = generated_sql(dialect)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {path}"
    assert sql == path.read_text(encoding="utf-8"), f"SQL changed: regenerate {path} if intended"

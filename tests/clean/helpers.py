"""Run one cleaning rule over a list of raw values on a real engine."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mecdp.clean.kinds import Field
from mecdp.clean.rules import PHONE_UDF, clean_field, id_card_udf
from mecdp.store.engine import Engine

TEST_KEY = b"test-key"


def clean_values(
    engine: Engine, field: Field, values: list[str | None], money_unit: str = "yuan"
) -> list[tuple[Any, Any]]:
    """(value, error) for each raw value, in order."""
    engine.register_udf(PHONE_UDF)
    engine.register_udf(id_card_udf(TEST_KEY))
    engine.register_arrow(
        "rule_input",
        pa.table({"i": list(range(len(values))), "raw": pa.array(values, pa.string())}),
    )
    value_sql, error_sql = clean_field("raw", field, "h", money_unit=money_unit).inline()
    rows = engine.fetch_arrow(
        f"SELECT i, {value_sql} AS value, {error_sql} AS error FROM rule_input ORDER BY i"
    ).to_pylist()
    return [(r["value"], r["error"]) for r in rows]

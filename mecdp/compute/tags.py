"""The tag engine (标签体系): definitions as data, compiled to SQL, previewed, run.

Definitions come from the shipped `tags.yaml` (the 医美 starter catalogue, documented there)
and ``<workspace>/tags/*.yaml``; the API saves more. Public surface:

* `load_definitions(workspace)` and `parse_definition(data)`: validated `TagDefinition`s;
  errors name the file, the tag_id, the field and the reason.
* `rule_fingerprint(definition)`: a stable hash of what decides the values (value type and
  rule), to bump the rule version when it changes.
* `tag_steps(definitions, as_of, scope)`: `SqlStep`s (DuckDB and Spark) ending in
  ``cm_out_tags(one_id, tag_id, value)`` for every enabled rule tag but ``sql`` ones.
* `run_expert_tag(cur, definition, as_of)`: one ``sql`` tag, sandboxed with a time limit
  (DuckDB only: it interrupts the DuckDB connection).
* `preview(engine_or_cursor, definition, as_of)`: count, sample and value counts of one
  definition over the materialised facts, saving nothing.

All of it reads the member facts (`mecdp.compute.facts`) already materialised on the
engine; nothing here writes the store.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml
from pydantic import ValidationError

from mecdp.compute.facts import MEMBERS, china_day, ts_literal
from mecdp.compute.tag_compile import OUT_TAGS, compile_tag_steps, number_text
from mecdp.compute.tag_rules import SqlRule, TagDefinition
from mecdp.compute.tag_sandbox import check_expert_sql
from mecdp.errors import InputError
from mecdp.store.engine import DuckDBEngine, Engine, SqlStep, pipeline_sql

__all__ = [
    "DEFAULT_EXPERT_TIMEOUT_S",
    "OUT_TAGS",
    "TAGS_SCHEMA",
    "TagDefinition",
    "TagPreview",
    "load_definitions",
    "parse_definition",
    "preview",
    "rule_fingerprint",
    "run_expert_tag",
    "tag_steps",
]

SHIPPED_FILE = "tags.yaml"
WORKSPACE_DIR = "tags"
DEFAULT_EXPERT_TIMEOUT_S = 10.0
TAGS_SCHEMA = pa.schema([("one_id", pa.string()), ("tag_id", pa.string()), ("value", pa.string())])


# --- definitions ----------------------------------------------------------------------------


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "definition"
        text = f"{where}: {error['msg'].removeprefix('Value error, ')}"
        given = error.get("input")
        if error["type"] != "value_error" and isinstance(given, str | int | float | bool):
            text += f" (got {given!r})"
        parts.append(text)
    return "; ".join(parts)


def parse_definition(data: Mapping[str, Any], *, source: str = "definition") -> TagDefinition:
    """Validate one definition; InputError naming `source`, the tag_id, field and reason."""
    tag_id = data.get("tag_id") if isinstance(data, Mapping) else None
    try:
        return TagDefinition.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise InputError(
            f"{source}: tag {tag_id!r}: {_describe(exc)}",
            field=".".join(str(p) for p in first) or None,
            rule="tags.definition",
            tag_id=tag_id,
            source=source,
        ) from None


def _entries(path: Path | str, text: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}", rule="tags.yaml") from None
    entries = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{path}: expected `tags:` with a list of definitions", rule="tags.yaml")
    return entries


def _merge_file(
    merged: dict[str, TagDefinition], path: Path | str, text: str, *, patches: bool
) -> None:
    """Add one file's definitions to `merged` (a tag_id seen before is replaced). With
    `patches`, an entry without a rule changes fields of an existing definition
    (``{tag_id: dormant, enabled: false}`` turns a shipped tag off)."""
    entries = _entries(path, text)
    seen: set[object] = set()
    for i, entry in enumerate(entries):
        if entry.get("tag_id") in seen:
            raise InputError(
                f"{path} (tags[{i}]): tag_id {entry.get('tag_id')!r} given twice", field="tag_id"
            )
        seen.add(entry.get("tag_id"))
    for i, entry in enumerate(entries):
        tag_id = entry.get("tag_id")
        source = f"{path} (tags[{i}])"
        if patches and "rule" not in entry and isinstance(tag_id, str) and tag_id in merged:
            entry = {**merged[tag_id].model_dump(mode="json"), **entry}
        definition = parse_definition(entry, source=source)
        merged[definition.tag_id] = definition


def load_definitions(workspace: Path | None = None) -> list[TagDefinition]:
    """The shipped catalogue, then every ``<workspace>/tags/*.yaml`` (by file name): a
    tag_id given there replaces the shipped one or, without a rule, patches its fields.
    Disabled definitions stay in the list (``enabled: False``)."""
    merged: dict[str, TagDefinition] = {}
    shipped = resources.files("mecdp.compute").joinpath(SHIPPED_FILE)
    _merge_file(merged, f"mecdp/compute/{SHIPPED_FILE}", shipped.read_text("utf-8"), patches=False)
    folder = workspace / WORKSPACE_DIR if workspace else None
    if folder is not None and folder.is_dir():
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
        for path in files:
            _merge_file(merged, path, path.read_text("utf-8"), patches=True)
    return list(merged.values())


def rule_fingerprint(definition: TagDefinition) -> str:
    """SHA-256 of the canonical JSON of the value type and rule (defaults filled in), so
    names, owner or refresh changes keep it and any change of what decides values bumps it."""
    canonical = json.dumps(
        {"value_type": definition.value_type, "rule": definition.rule.model_dump(mode="json")},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- compiled rule tags ---------------------------------------------------------------------


def tag_steps(
    definitions: list[TagDefinition], as_of: datetime, scope: str | None = None
) -> list[SqlStep]:
    """`SqlStep`s whose last output is ``cm_out_tags(one_id, tag_id, value)`` with every
    enabled non-SQL tag of every member (of the one_ids in table `scope`, when given).

    Reads the materialised member facts; boolean tags give a row only when true ('true'),
    enum tags their value, number tags the number as text (see `tag_compile.number_text`).
    """
    return compile_tag_steps(definitions, as_of, scope)


# --- expert (SQL) tags ----------------------------------------------------------------------


def _params(as_of: datetime) -> str:
    """The one-row ``params`` input of expert queries: as_of (UTC) and its day in China."""
    day = china_day(as_of).isoformat()
    return f"SELECT {ts_literal(as_of)} AS as_of, DATE '{day}' AS as_of_date"


def _expert_query(definition: TagDefinition, sql: str, as_of: datetime, has_value: bool) -> str:
    """The checked query wrapped: members only, values formatted like compiled tags, with
    per-person counts that reveal bad or conflicting values."""
    value_type = definition.value_type
    if value_type == "boolean":
        raw = "TRY_CAST(q.value AS BOOLEAN)" if has_value else "TRUE"
        formatted = f"CASE WHEN {raw} THEN 'true' END"
    elif value_type == "number":
        raw = "TRY_CAST(q.value AS DOUBLE)"
        formatted = number_text(raw)
    else:
        raw = "CAST(q.value AS VARCHAR)"
        formatted = raw
    given = "q.value" if has_value else "TRUE"
    return f"""
WITH params AS ({_params(as_of)}),
q AS ({sql}),
v AS (
  SELECT CAST(q.one_id AS VARCHAR) AS one_id, {formatted} AS value,
         CASE WHEN {given} IS NOT NULL AND {raw} IS NULL THEN CAST({given} AS VARCHAR) END AS bad
  FROM q WHERE CAST(q.one_id AS VARCHAR) IN (SELECT one_id FROM {MEMBERS})
)
SELECT one_id, min(value) AS value, count(DISTINCT value) AS n_values, min(bad) AS bad
FROM v GROUP BY one_id
"""


@dataclass
class _Deadline:
    """Interrupts `cur` when `seconds` pass (DuckDB's interrupt from a timer thread)."""

    cur: duckdb.DuckDBPyConnection
    seconds: float
    tripped: bool = False
    _timer: threading.Timer | None = field(default=None, repr=False)

    def __enter__(self) -> _Deadline:
        self._timer = threading.Timer(self.seconds, self._trip)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _trip(self) -> None:
        self.tripped = True
        self.cur.interrupt()

    def __exit__(self, *_: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_expert_tag(
    cur: duckdb.DuckDBPyConnection,
    definition: TagDefinition,
    as_of: datetime,
    timeout_s: float | None = None,
) -> pa.Table:
    """Run one ``sql`` tag on DuckDB over the materialised facts on `cur`; returns rows
    (one_id, tag_id, value) like ``cm_out_tags``. DuckDB only (the facts must be on `cur`).

    The query was checked by the sandbox when the definition was made, and is checked again
    here; it runs as re-rendered from the checked tree, inside a time limit (the rule's
    ``timeout_s``, else `timeout_s`, else `DEFAULT_EXPERT_TIMEOUT_S`). InputError when it is
    refused, fails, runs out of time, lacks ``one_id`` (or ``value`` for enum and number
    tags), gives a value that is not of the tag's type, or two values for one person.
    Call it outside an open transaction on `cur`: DuckDB aborts a transaction whose query
    was interrupted.
    """
    rule = definition.rule
    if not isinstance(rule, SqlRule):
        raise InputError(f"tag {definition.tag_id!r} is not a sql tag", field="rule.kind")
    sql = check_expert_sql(rule.sql)
    limit = rule.timeout_s or timeout_s or DEFAULT_EXPERT_TIMEOUT_S
    as_of = as_of.replace(tzinfo=None)
    where = f"tag {definition.tag_id!r}"
    try:
        with _Deadline(cur, limit) as deadline:
            probe = cur.execute(
                f"WITH params AS ({_params(as_of)}) SELECT * FROM ({sql}) q LIMIT 0"
            )
            columns = [d[0].lower() for d in probe.description or ()]
            if "one_id" not in columns:
                raise InputError(
                    f"{where}: the query must return a one_id column", field="rule.sql"
                )
            has_value = "value" in columns
            if not has_value and definition.value_type != "boolean":
                raise InputError(
                    f"{where}: a {definition.value_type} tag's query must return a value column",
                    field="rule.sql",
                )
            query = _expert_query(definition, sql, as_of, has_value)
            result = cur.execute(query).arrow().read_all()
    except duckdb.InterruptException:
        raise InputError(
            f"{where}: the query ran longer than its time limit of {limit:g} s",
            field="rule.timeout_s",
            rule="tags.sql_timeout",
        ) from None
    except duckdb.Error as exc:
        if deadline.tripped:
            raise InputError(
                f"{where}: the query ran longer than its time limit of {limit:g} s",
                field="rule.timeout_s",
                rule="tags.sql_timeout",
            ) from None
        raise InputError(f"{where}: the query failed: {exc}", field="rule.sql") from None
    return _expert_rows(definition, result)


def _expert_rows(definition: TagDefinition, result: pa.Table) -> pa.Table:
    where = f"tag {definition.tag_id!r}"
    for row in result.to_pylist():
        if row["bad"] is not None:
            raise InputError(
                f"{where}: value {row['bad']!r} of {row['one_id']} is not a "
                f"{definition.value_type}",
                field="rule.sql",
            )
        if row["n_values"] > 1:
            raise InputError(
                f"{where}: the query gives {row['one_id']} {row['n_values']} different values",
                field="rule.sql",
            )
    kept = result.filter(pa.compute.is_valid(result.column("value")))
    return pa.table(
        {
            "one_id": kept.column("one_id").cast(pa.string()),
            "tag_id": pa.array([definition.tag_id] * kept.num_rows, pa.string()),
            "value": kept.column("value").cast(pa.string()),
        },
        schema=TAGS_SCHEMA,
    )


# --- preview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagPreview:
    """What a definition would give now: members tagged, the first `sample` of them (by
    one_id, with their values) and, for enum tags, members per value."""

    count: int
    sample_one_ids: list[str]
    sample_values: list[str]
    value_counts: dict[str, int]


def preview(
    target: Engine | duckdb.DuckDBPyConnection,
    definition: TagDefinition,
    as_of: datetime,
    sample: int = 20,
    timeout_s: float | None = None,
) -> TagPreview:
    """Compile and run just `definition` (enabled or not) over the facts materialised on
    `target`, saving nothing. ``sql`` tags need a DuckDB cursor or engine."""
    engine = target if isinstance(target, Engine) else DuckDBEngine(target)
    if isinstance(definition.rule, SqlRule):
        if not isinstance(engine, DuckDBEngine):
            raise InputError("sql tags preview on DuckDB only", field="rule.kind")
        rows = run_expert_tag(engine.con, definition, as_of, timeout_s)
        name = f"tg_preview_{definition.tag_id}"
        engine.register_arrow(name, rows)
        try:
            summary = _summarise(engine, [SqlStep(f"SELECT * FROM {name}", OUT_TAGS)], sample)
        finally:
            engine.drop(name)
    else:
        steps = tag_steps([definition.model_copy(update={"enabled": True})], as_of)
        summary = _summarise(engine, steps, sample)
    if definition.value_type != "enum":
        summary = TagPreview(summary.count, summary.sample_one_ids, summary.sample_values, {})
    return summary


def _summarise(engine: Engine, steps: list[SqlStep], sample: int) -> TagPreview:
    by_value = SqlStep(f"SELECT value, count(*) AS n FROM {OUT_TAGS} GROUP BY value", "tg_counts")
    counts = engine.fetch_arrow(pipeline_sql([*steps, by_value])).to_pylist()
    first = SqlStep(
        f"SELECT one_id, value FROM {OUT_TAGS} ORDER BY one_id LIMIT {int(sample)}", "tg_sample"
    )
    rows = engine.fetch_arrow(pipeline_sql([*steps, first])).to_pylist()
    return TagPreview(
        count=sum(int(r["n"]) for r in counts),
        sample_one_ids=[str(r["one_id"]) for r in rows],
        sample_values=[str(r["value"]) for r in rows],
        value_counts={str(r["value"]): int(r["n"]) for r in sorted(counts, key=lambda r: -r["n"])},
    )

"""Reads of the layering tables for the API and the CLI: tag definitions with member counts,
a tag's members and history, a member's layering, compute runs, previews and migrations.

Every function takes a DuckDB cursor over the store (the server's, or the CLI's own when no
server runs) and returns plain JSON-able values; times are UTC, naive ISO 8601 as stored.
Nothing here writes the store (a preview materialises the facts as temp tables of its own
cursor and drops them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from mecdp.compute import facts, tags
from mecdp.compute.config import LayeringConfig
from mecdp.compute.migration import migration_matrix
from mecdp.compute.rfm import explain_rfm
from mecdp.compute.service import DEFINITION_COLUMNS
from mecdp.compute.tags import TagDefinition
from mecdp.errors import InputError, NotFound
from mecdp.store import Store
from mecdp.store.engine import DuckDBEngine

TagChange = Literal["gained", "lost", "changed"]
TAG_CHANGES: tuple[TagChange, ...] = ("gained", "lost", "changed")
MAX_PAGE = 1000
_DEFINITION_COLUMNS = (*DEFINITION_COLUMNS, "version", "origin", "updated_at", "updated_by")
_HISTORY_COLUMNS = (
    "one_id",
    "change",
    "value",
    "previous_value",
    "rule_version",
    "changed_at",
    "run_id",
)
_RUN_COLUMNS = (
    "run_id",
    "started_at",
    "finished_at",
    "as_of",
    "scope",
    "engine",
    "members",
    "status",
)


def plain(value: Any) -> Any:
    """A stored value as JSON: times and dates in ISO 8601."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row_dict(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return {c: plain(v) for c, v in zip(columns, row, strict=True)}


def utc_moment(value: datetime | date | str, field: str) -> datetime:
    """A moment as the store keeps it (naive UTC). Strings are ISO 8601 dates or times; a
    date is 00:00 UTC of that day; an aware time is converted to UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(
                f"{field}: {value!r} is not a date (YYYY-MM-DD) or ISO 8601 time",
                field=field,
                value=value,
                rule="moment.format",
            ) from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(
            f"limit must be between 1 and {MAX_PAGE}", field="limit", value=limit, rule="range"
        )
    if offset < 0:
        raise InputError("offset must not be negative", field="offset", value=offset, rule="range")


def _scalar(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> int:
    row = cur.execute(sql, list(params)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


# --------------------------------------------------------------------------- definitions


def _definition(row: Sequence[Any]) -> dict[str, Any]:
    out = _row_dict(_DEFINITION_COLUMNS, row)
    out["rule"] = json.loads(out["rule"]) if isinstance(out["rule"], str) else out["rule"]
    return out


def _value_labels(config: LayeringConfig | None, tag_id: str) -> dict[str, dict[str, str]]:
    """The console labels of a system tag's values (RFM groups, tiers) from layering.yaml."""
    if config is None:
        return {}
    return {k: {"zh": v.zh, "en": v.en} for k, v in config.labels.get(tag_id, {}).items()}


def list_tags(
    cur: duckdb.DuckDBPyConnection, config: LayeringConfig | None = None
) -> list[dict[str, Any]]:
    """Every definition with its current member count (and value counts for enum tags)."""
    rows = cur.execute(
        f"SELECT {', '.join('d.' + c for c in _DEFINITION_COLUMNS)}, coalesce(n.members, 0) "
        "FROM tag_definitions d "
        "LEFT JOIN (SELECT tag_id, count(*) AS members FROM customer_tags GROUP BY tag_id) n "
        "ON n.tag_id = d.tag_id ORDER BY d.category, d.tag_id"
    ).fetchall()
    values: dict[str, dict[str, int]] = {}
    for tag_id, value, n in cur.execute(
        "SELECT t.tag_id, t.value, count(*) FROM customer_tags t "
        "JOIN tag_definitions d ON d.tag_id = t.tag_id AND d.value_type = 'enum' "
        "GROUP BY ALL ORDER BY 1, 3 DESC, 2"
    ).fetchall():
        values.setdefault(str(tag_id), {})[str(value)] = int(n)
    out = []
    for row in rows:
        item = _definition(row[:-1])
        item["members"] = int(row[-1])
        item["values"] = values.get(item["tag_id"], {}) if item["value_type"] == "enum" else None
        item["value_labels"] = _value_labels(config, item["tag_id"])
        out.append(item)
    return out


def get_tag(
    cur: duckdb.DuckDBPyConnection, tag_id: str, config: LayeringConfig | None = None
) -> dict[str, Any]:
    """One definition with its counts; `NotFound` when there is no such tag."""
    row = cur.execute(
        f"SELECT {', '.join(_DEFINITION_COLUMNS)} FROM tag_definitions WHERE tag_id = ?",
        [tag_id],
    ).fetchone()
    if row is None:
        raise NotFound(
            f"no tag {tag_id!r} (a tag appears after it is saved or after `mecdp compute`)",
            field="tag_id",
            value=tag_id,
        )
    item = _definition(row)
    item["members"] = _scalar(cur, "SELECT count(*) FROM customer_tags WHERE tag_id = ?", [tag_id])
    item["values"] = None
    if item["value_type"] == "enum":
        item["values"] = {
            str(v): int(n)
            for v, n in cur.execute(
                "SELECT value, count(*) FROM customer_tags WHERE tag_id = ? "
                "GROUP BY value ORDER BY 2 DESC, 1",
                [tag_id],
            ).fetchall()
        }
    item["value_labels"] = _value_labels(config, tag_id)
    return item


def _known_tag(cur: duckdb.DuckDBPyConnection, tag_id: str) -> None:
    if cur.execute("SELECT 1 FROM tag_definitions WHERE tag_id = ?", [tag_id]).fetchone() is None:
        raise NotFound(f"no tag {tag_id!r}", field="tag_id", value=tag_id)


# --------------------------------------------------------------------------- members, history


def tag_members(
    cur: duckdb.DuckDBPyConnection,
    tag_id: str,
    *,
    value: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """The members holding a tag now (one_ids only, ordered), optionally one value of it."""
    _page(limit, offset)
    _known_tag(cur, tag_id)
    where, params = "tag_id = ?", [tag_id]
    if value is not None:
        where += " AND value = ?"
        params.append(value)
    total = _scalar(cur, f"SELECT count(*) FROM customer_tags WHERE {where}", params)
    rows = cur.execute(
        f"SELECT one_id, value FROM customer_tags WHERE {where} ORDER BY one_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return {
        "tag_id": tag_id,
        "value": value,
        "total": total,
        "limit": limit,
        "offset": offset,
        "members": [{"one_id": str(r[0]), "value": str(r[1])} for r in rows],
    }


def tag_history(
    cur: duckdb.DuckDBPyConnection,
    tag_id: str,
    *,
    change: TagChange | None = None,
    value: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Changes of a tag, newest first: "who became 沉睡 this month" is ``change='gained'``
    with `since` the first of the month. `value` matches the value gained or changed to (for
    a loss, the value lost); `since` is inclusive, `until` exclusive (UTC)."""
    _page(limit, offset)
    _known_tag(cur, tag_id)
    if change is not None and change not in TAG_CHANGES:
        raise InputError(
            f"change must be one of {', '.join(TAG_CHANGES)}", field="change", value=change
        )
    where: list[str] = ["tag_id = ?"]
    params: list[Any] = [tag_id]
    for clause, param in (
        ("change = ?", change),
        ("coalesce(value, previous_value) = ?", value),
        ("changed_at >= ?", since),
        ("changed_at < ?", until),
    ):
        if param is not None:
            where.append(clause)
            params.append(param)
    condition = " AND ".join(where)
    total = _scalar(cur, f"SELECT count(*) FROM customer_tag_history WHERE {condition}", params)
    rows = cur.execute(
        f"SELECT {', '.join(_HISTORY_COLUMNS)} FROM customer_tag_history WHERE {condition} "
        "ORDER BY changed_at DESC, one_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return {
        "tag_id": tag_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [_row_dict(_HISTORY_COLUMNS, r) for r in rows],
    }


# --------------------------------------------------------------------------- runs


def _parameters(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    data = json.loads(raw) if isinstance(raw, str) else raw
    return data if isinstance(data, dict) else {}


def recent_runs(cur: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    """Compute runs, newest first, with the seconds per stage."""
    _page(limit, 0)
    rows = cur.execute(
        f"SELECT {', '.join(_RUN_COLUMNS)}, parameters FROM compute_runs "
        "ORDER BY started_at DESC LIMIT ?",
        [limit],
    ).fetchall()
    out = []
    for row in rows:
        item = _row_dict(_RUN_COLUMNS, row[:-1])
        item["stages"] = _parameters(row[-1]).get("stages", {})
        out.append(item)
    return out


def get_run(cur: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """One run with every parameter that explains it (RFM cut-offs, CLV fit, tag versions)."""
    row = cur.execute(
        f"SELECT {', '.join(_RUN_COLUMNS)}, parameters FROM compute_runs WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no compute run {run_id!r}", field="run_id", value=run_id)
    item = _row_dict(_RUN_COLUMNS, row[:-1])
    item["parameters"] = _parameters(row[-1])
    return item


# --------------------------------------------------------------------------- one member


# Tag categories derived from treatments: shown with a member only where the due dates are.
MEDICAL_TAG_CATEGORIES = frozenset({"treatment"})


def visible_tags(tags: list[dict[str, Any]], medical: bool) -> list[dict[str, Any]]:
    """A member's tags as a caller sees them: those derived from treatments (medical data,
    PIPL Art. 28) only when the caller may see the treatment due dates."""
    if medical:
        return tags
    return [t for t in tags if t.get("category") not in MEDICAL_TAG_CATEGORIES]


def _member_tags(cur: duckdb.DuckDBPyConnection, one_id: str) -> list[dict[str, Any]]:
    columns = ("tag_id", "name_zh", "name_en", "category", "value_type", "value")
    rows = cur.execute(
        "SELECT t.tag_id, d.name_zh, d.name_en, d.category, d.value_type, t.value "
        "FROM customer_tags t LEFT JOIN tag_definitions d ON d.tag_id = t.tag_id "
        "WHERE t.one_id = ? ORDER BY d.category, t.tag_id",
        [one_id],
    ).fetchall()
    # two point reads on the one_id indexes (a correlated subquery would scan the history)
    since = dict(
        cur.execute(
            "SELECT tag_id, max(changed_at) FROM customer_tag_history "
            "WHERE one_id = ? AND change <> 'lost' GROUP BY tag_id",
            [one_id],
        ).fetchall()
    )
    return [{**_row_dict(columns, r), "since": plain(since.get(r[0]))} for r in rows]


def _one_row(cur: duckdb.DuckDBPyConnection, sql: str, one_id: str) -> dict[str, Any] | None:
    found = cur.execute(sql, [one_id])
    row = found.fetchone()
    if row is None:
        return None
    return _row_dict([d[0] for d in found.description], row)


def member_layering(
    cur: duckdb.DuckDBPyConnection,
    one_id: str,
    *,
    medical: bool,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """A member's scores row, current tags, RFM explanation and (only when `medical`: the
    caller may see sensitive medical data) treatment due dates."""
    scores = _one_row(cur, "SELECT * FROM scores WHERE one_id = ?", one_id)
    tags = visible_tags(_member_tags(cur, one_id), medical)
    if scores is None and not tags:
        known = cur.execute("SELECT 1 FROM profiles WHERE one_id = ?", [one_id]).fetchone()
        if known is None:
            raise NotFound(f"no person {one_id!r}", field="one_id", value=one_id)
    explanation = None
    run = None
    if scores is not None:
        run = get_run(cur, str(scores["run_id"]))
        cutoffs = run["parameters"].get("rfm", {}).get("cutoffs", [])
        explanation = explain_rfm(scores, cutoffs, LayeringConfig.load(workspace))
        run = {k: run[k] for k in ("run_id", "as_of", "finished_at", "engine")}
    out: dict[str, Any] = {
        "one_id": one_id,
        "scores": scores,
        "tags": tags,
        "rfm_explanation": explanation,
        "run": run,
        "treatment_due": None,
    }
    if medical:
        found = cur.execute(
            "SELECT item_code, item_name, category, last_performed_at, cycle_days, due_on, "
            "status FROM treatment_due WHERE one_id = ? ORDER BY due_on, item_code",
            [one_id],
        )
        columns = [d[0] for d in found.description]
        out["treatment_due"] = [_row_dict(columns, r) for r in found.fetchall()]
    return out


# --------------------------------------------------------------------------- preview, migration


def preview_definition(
    store: Store,
    definition: TagDefinition,
    as_of: datetime | None = None,
    sample: int = 20,
) -> dict[str, Any]:
    """What `definition` would select now (or as of `as_of`), saving nothing: the member facts
    are materialised on a cursor of its own (temp tables, gone when it closes)."""
    moment = utc_moment(as_of, "as_of") if as_of else datetime.now(UTC).replace(tzinfo=None)
    cur = store.con.cursor()
    try:
        engine = DuckDBEngine(cur)
        for pipeline in facts.fact_steps(moment):
            engine.run_pipeline(list(pipeline), pipeline[-1].output_table_name)
        found = tags.preview(cur, definition, moment, sample=sample)
    finally:
        cur.close()
    return {
        "tag_id": definition.tag_id,
        "as_of": moment.isoformat(),
        "count": found.count,
        "sample": found.sample_one_ids,
        "value_counts": found.value_counts if definition.value_type == "enum" else None,
    }


def migration(
    cur: duckdb.DuckDBPyConnection,
    tag_id: str,
    start: datetime,
    end: datetime,
    config: LayeringConfig | None = None,
) -> dict[str, Any]:
    """The migration matrix of a tag (e.g. value_tier 高价值/潜力/休眠) between two moments,
    from the tag history; values in the order of their labels in layering.yaml, None
    (without the tag) last."""
    _known_tag(cur, tag_id)
    labels = _value_labels(config, tag_id)
    found = migration_matrix(cur, tag_id, start, end, values=list(labels)).to_dict()
    return {**found, "value_labels": labels}

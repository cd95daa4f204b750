"""Retention policies per data class and the purge job (`mecdp privacy purge`).

Policies live in `retention.yaml` (shipped) and may be overridden per class by the
workspace's own `retention.yaml`. `purge` deletes rows older than each class's limit, with
the contacts and identifiers of purged event records, and removes raw file copies whose
import is older than the ``raw_files`` limit. The caller writes one audit row with the
counts (`purge` returns them); the server runs `purge` daily from its scheduler thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import duckdb
import yaml

from mecdp.config import Settings
from mecdp.errors import InputError

WORKSPACE_FILE = "retention.yaml"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Policy:
    data_class: str
    days: int
    column: str | None


def load_policies(settings: Settings) -> dict[str, Policy]:
    text = resources.files("mecdp.privacy").joinpath("retention.yaml").read_text("utf-8")
    raw: dict[str, Any] = dict(yaml.safe_load(text))
    override = settings.workspace / WORKSPACE_FILE
    if override.exists():
        raw.update(yaml.safe_load(override.read_text("utf-8")) or {})
    out = {}
    for name, spec in raw.items():
        if not _IDENT.match(name) or not isinstance(spec, dict):
            raise InputError(f"retention entry {name!r} is not valid", field=name)
        days = spec.get("days")
        column = spec.get("column")
        if not isinstance(days, int) or days < 1:
            raise InputError(f"retention {name}: days must be a positive integer", field=name)
        if column is not None and not _IDENT.match(str(column)):
            raise InputError(f"retention {name}: column is not a plain name", field=name)
        out[name] = Policy(name, days, column)
    return out


def purge(
    cur: duckdb.DuckDBPyConnection, settings: Settings, *, now: datetime | None = None
) -> dict[str, int]:
    """Delete what is past its retention (inside the caller's transaction); counts per class."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    counts: dict[str, int] = {}
    for policy in load_policies(settings).values():
        cutoff = now - timedelta(days=policy.days)
        if policy.data_class == "raw_files":
            counts["raw_files"] = _purge_files(cur, settings, cutoff)
            continue
        if policy.column is None:
            continue
        if policy.data_class == "events":
            cur.execute(
                "CREATE OR REPLACE TEMP TABLE _purged_events AS SELECT record_id FROM events "
                "WHERE occurred_at < ?",
                [cutoff],
            )
            for table in ("contacts", "record_identifiers"):
                cur.execute(
                    f"DELETE FROM {table} WHERE record_kind = 'events' "
                    "AND record_id IN (SELECT record_id FROM _purged_events)"
                )
            cur.execute("DROP TABLE _purged_events")
        gone = cur.execute(
            f"DELETE FROM {policy.data_class} WHERE {policy.column} < ? RETURNING 1", [cutoff]
        ).fetchall()
        counts[policy.data_class] = len(gone)
    return counts


def _purge_files(cur: duckdb.DuckDBPyConnection, settings: Settings, cutoff: datetime) -> int:
    rows = cur.execute(
        "SELECT DISTINCT file_sha256, file_format FROM file_imports WHERE imported_at < ? "
        "AND file_sha256 NOT IN (SELECT file_sha256 FROM file_imports WHERE imported_at >= ?)",
        [cutoff, cutoff],
    ).fetchall()
    removed = 0
    for sha, fmt in rows:
        path = settings.raw_files_dir / f"{sha}.{fmt}.enc"
        if path.exists():
            path.unlink()
            removed += 1
    return removed

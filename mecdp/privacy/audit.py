"""The audit log: append-only and hash-chained.

Each row's ``row_hash`` is SHA-256 over the canonical JSON of the row (every column but
``row_hash``) followed by ``prev_hash``, the previous row's hash (64 zeros for the first).
Appends are serialised by a lock held across the read of the chain head and the insert's
commit, so the chain is linear. After each append the head (seq and hash) is also written
to ``secrets/audit.head`` when a workspace is known, so cutting rows off the end of the
chain is detected too.

Rows name actors, actions, member references (one_id or ``<type>:bi:<blind index>``) and
purposes - never contact values, passwords or tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from mecdp.store import Store

log = logging.getLogger("mecdp.privacy.audit")

GENESIS = "0" * 64
HEAD_FILE = "audit.head"
_LOCK = threading.RLock()
_COLUMNS = (
    "seq",
    "logged_at",
    "actor",
    "actor_role",
    "action",
    "target",
    "member_refs",
    "purpose",
    "outcome",
    "detail",
    "prev_hash",
)


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    actor_role: str | None = None
    target: str | None = None
    member_refs: Sequence[str] = ()
    purpose: str | None = None
    outcome: str = "ok"
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def row_hash(row: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the row's columns (without row_hash) + prev_hash."""
    body = {k: _canonical(row[k]) for k in _COLUMNS}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((text + str(row["prev_hash"])).encode("utf-8")).hexdigest()


_pending = threading.local()


@contextmanager
def audited_transaction(
    store: Store, *, head_file: Path | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction that may append audit rows: holds the chain lock until it commits.

    After the commit the new chain head is written to `head_file` (when given).
    """
    with _LOCK:
        _pending.head = None
        with store.transaction() as cur:
            yield cur
        head: tuple[int, str] | None = _pending.head
        _pending.head = None
        if head is not None and head_file is not None:
            head_file.write_text(f"{head[0]} {head[1]}\n")


def append_audit(cur: duckdb.DuckDBPyConnection, entry: AuditEntry) -> int:
    """Append one row to the chain inside the caller's `audited_transaction`; returns its seq."""
    with _LOCK:
        last = cur.execute(
            "SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq = int(last[0]) + 1 if last else 1
        row: dict[str, Any] = {
            "seq": seq,
            "logged_at": datetime.now(UTC).replace(tzinfo=None),
            "actor": entry.actor,
            "actor_role": entry.actor_role,
            "action": entry.action,
            "target": entry.target,
            "member_refs": json.dumps(sorted(set(entry.member_refs)), ensure_ascii=False),
            "purpose": entry.purpose,
            "outcome": entry.outcome,
            "detail": json.dumps(entry.detail or {}, sort_keys=True, ensure_ascii=False),
            "prev_hash": str(last[1]) if last else GENESIS,
        }
        row["row_hash"] = row_hash(row)
        cur.execute(
            f"INSERT INTO audit_log ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        _pending.head = (seq, row["row_hash"])
    log.info("audit.appended", extra={"audit_action": entry.action, "audit_seq": seq})
    return seq


def audit(store: Store, entry: AuditEntry, *, head_file: Path | None = None) -> int:
    """Append one audit row in its own transaction."""
    with audited_transaction(store, head_file=head_file) as cur:
        return append_audit(cur, entry)


def list_audit(
    cur: duckdb.DuckDBPyConnection,
    *,
    member_ref: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; filter by member reference or action."""
    where, params = [], []
    if member_ref:
        where.append("list_contains(json_extract_string(member_refs, '$[*]'), ?)")
        params.append(member_ref)
    if action:
        where.append("action = ?")
        params.append(action)
    sql = f"SELECT {', '.join(_COLUMNS)}, row_hash FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = cur.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit]).fetchall()
    out = []
    for r in rows:
        d = dict(zip((*_COLUMNS, "row_hash"), r, strict=True))
        d["logged_at"] = d["logged_at"].isoformat() + "Z"
        d["member_refs"] = json.loads(d["member_refs"])
        d["detail"] = json.loads(d["detail"])
        out.append(d)
    return out


def verify_audit(cur: duckdb.DuckDBPyConnection, *, head_file: Path | None = None) -> VerifyResult:
    """Recompute the chain; the first row that does not match is named."""
    rows = cur.execute(
        f"SELECT {', '.join(_COLUMNS)}, row_hash FROM audit_log ORDER BY seq"
    ).fetchall()
    prev = GENESIS
    hashes: dict[int, str] = {}
    for expected_seq, values in enumerate(rows, start=1):
        row = dict(zip((*_COLUMNS, "row_hash"), values, strict=True))
        seq = int(row["seq"])
        if seq != expected_seq:
            return VerifyResult(False, len(rows), expected_seq, f"row {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return VerifyResult(
                False, len(rows), seq, f"row {seq} does not link to row {seq - 1} (prev_hash)"
            )
        if row_hash(row) != row["row_hash"]:
            return VerifyResult(
                False, len(rows), seq, f"row {seq} was changed after it was written (row_hash)"
            )
        prev = str(row["row_hash"])
        hashes[seq] = prev
    if head_file is not None and head_file.exists():
        head_seq_text, _, head_hash = head_file.read_text().strip().partition(" ")
        head_seq = int(head_seq_text)
        if hashes.get(head_seq) != head_hash:
            return VerifyResult(
                False,
                len(rows),
                min(head_seq, len(rows) + 1),
                f"the chain no longer contains row {head_seq} as recorded in {HEAD_FILE} "
                "(rows were removed or rewritten)",
            )
    return VerifyResult(True, len(rows))

"""Data-subject requests (PIPL Art. 44-47): access/copy, correction, deletion, and the queue.

A member is found by what the data subject gives (phone, email, member number, ...):
`resolve_member` runs the registered resolvers (`MEMBER_RESOLVERS`) in order. The OneID
resolver answers when the identity tables know the identifier (``identity_oneid`` ->
``identity_records``, following ``identity_redirects``); otherwise the fallback follows
``record_identifiers`` transitively (records sharing an identifier with the member's
records, a few hops). Other resolvers can be inserted at the front.

* `export_member`: every row of the member in every table that has a ``record_id`` (or a
  ``one_id``) column, plus raw-log payloads, consents and quarantine rows, decrypted; as JSON
  and as a zip of CSV files (`export_zip`).
* `correct_field`: a profile field of the member's records, with the old and new value
  (encrypted) in ``profile_corrections``.
* `delete_member`: erases the member's rows in every such table, raw_events, quarantine rows
  and the raw file copies (rewritten without the member's lines); treatments move to
  ``restricted_records`` (encrypted, compliance-only). The caller compacts the store
  afterwards (`Store.compact`) so no deleted bytes remain in the database file.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from mecdp.config import Settings
from mecdp.errors import InputError, NotFound
from mecdp.privacy.crypto import BLIND_INDEX_TYPES
from mecdp.privacy.vault import (
    CTX_CORRECTION,
    CTX_DSR,
    CTX_NAME,
    CTX_QUARANTINE_PAYLOAD,
    CTX_QUARANTINE_VALUE,
    CTX_RESTRICTED,
    ENCRYPTED_ID_TYPES,
    Vault,
    open_file,
    plain_contacts,
    plain_identifiers,
    reveal_json,
    seal_file,
    stored_identifier,
    vault_for,
)
from mecdp.profiles import serving

KINDS = ("access", "correction", "deletion")
STATUSES = ("received", "in_progress", "completed", "rejected")
DUE_WORKING_DAYS = 15
MAX_HOPS = 4
# Tables kept on deletion (they hold no personal values, or are the law's evidence):
# the audit chain, the consent ledger (blind-index references, proof of consent), the
# request queue itself and the restricted medical records.
KEEP_TABLES = frozenset(
    {"audit_log", "consents", "dsr_requests", "restricted_records", "schema_migrations"}
)
RESTRICTED_KINDS = ("treatments",)  # medical records the law requires to keep
CORRECTABLE = ("name", "gender", "birthday", "city", "phone", "email")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def due_date(received: date, working_days: int = DUE_WORKING_DAYS) -> date:
    """`working_days` Mon-Fri days after `received` (Chinese public holidays not modelled)."""
    day = received
    left = working_days
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


# --------------------------------------------------------------------------- members


@dataclass
class Member:
    """The records (and one_ids) of one data subject."""

    record_ids: list[str]
    one_ids: list[str] = field(default_factory=list)
    resolved_by: str = "record_identifiers"

    @property
    def ref(self) -> str:
        return f"one_id:{self.one_ids[0]}" if self.one_ids else f"records:{len(self.record_ids)}"


Resolver = Callable[[duckdb.DuckDBPyConnection, Settings, list[tuple[str, str]]], Member | None]


def _table_exists(cur: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = 'main'",
        [name],
    ).fetchone()
    return bool(row and row[0])


def _stored(settings: Settings, identifiers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    vault = vault_for(settings)
    out = []
    for id_type, value in identifiers:
        if id_type == "phone":
            from mecdp.clean.rules import phone_to_e164

            value = phone_to_e164(value) or value
        elif id_type == "email":
            value = value.strip().lower()
        out.append((id_type, stored_identifier(vault, id_type, value)))
    return out


def resolve_by_oneid(
    cur: duckdb.DuckDBPyConnection, settings: Settings, identifiers: list[tuple[str, str]]
) -> Member | None:
    """OneID: identifier -> one_id (through redirects) -> its records."""
    if not _table_exists(cur, "identity_oneid"):
        return None
    one_ids: set[str] = set()
    for id_type, stored in _stored(settings, identifiers):
        rows = cur.execute(
            "SELECT coalesce(r.to_one_id, o.one_id) FROM identity_oneid o "
            "LEFT JOIN identity_redirects r ON r.from_one_id = o.one_id "
            "WHERE o.id_type = ? AND o.id_value = ?",
            [id_type, stored],
        ).fetchall()
        one_ids.update(str(r[0]) for r in rows)
    if not one_ids:
        return None
    ids = sorted(one_ids)
    rows = cur.execute(
        "SELECT DISTINCT record_id FROM identity_records WHERE one_id IN "
        f"({', '.join('?' * len(ids))}) ORDER BY 1",
        ids,
    ).fetchall()
    return Member([str(r[0]) for r in rows], ids, "oneid")


def resolve_by_identifiers(
    cur: duckdb.DuckDBPyConnection, settings: Settings, identifiers: list[tuple[str, str]]
) -> Member | None:
    """Fallback: records carrying the identifiers, then records sharing identifiers with
    those, up to `MAX_HOPS` hops."""
    frontier = set(_stored(settings, identifiers))
    seen_ids: set[tuple[str, str]] = set()
    records: set[str] = set()
    for _ in range(MAX_HOPS):
        new_ids = frontier - seen_ids
        if not new_ids:
            break
        seen_ids |= new_ids
        pairs = sorted(new_ids)
        cond = " OR ".join("(id_type = ? AND id_value = ?)" for _ in pairs)
        params = [x for p in pairs for x in p]
        found = {
            str(r[0])
            for r in cur.execute(
                f"SELECT DISTINCT record_id FROM record_identifiers WHERE {cond}", params
            ).fetchall()
        }
        fresh = sorted(found - records)
        records |= found
        if not fresh:
            break
        frontier = {
            (str(t), str(v))
            for t, v in cur.execute(
                "SELECT DISTINCT id_type, id_value FROM record_identifiers WHERE record_id IN "
                f"({', '.join('?' * len(fresh))})",
                fresh,
            ).fetchall()
        }
    if not records:
        return None
    return Member(sorted(records))


MEMBER_RESOLVERS: list[Resolver] = [resolve_by_oneid, resolve_by_identifiers]


def resolve_member(
    cur: duckdb.DuckDBPyConnection, settings: Settings, identifiers: list[tuple[str, str]]
) -> Member:
    if not identifiers:
        raise InputError("give at least one identifier {type, value}", field="identifiers")
    for resolver in MEMBER_RESOLVERS:
        member = resolver(cur, settings, identifiers)
        if member is not None and member.record_ids:
            return member
    raise NotFound("no member carries these identifiers", field="identifiers")


# --------------------------------------------------------------------------- the queue


def _request_row(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = (
        "request_id",
        "kind",
        "status",
        "member_ref",
        "received_at",
        "due_on",
        "updated_at",
        "completed_at",
        "handled_by",
        "note",
        "result",
    )
    out = dict(zip(keys, row, strict=True))
    for k in ("received_at", "updated_at", "completed_at"):
        out[k] = out[k].isoformat() + "Z" if out[k] else None
    out["due_on"] = out["due_on"].isoformat()
    out["result"] = json.loads(out["result"]) if out["result"] else None
    return out


_REQUEST_COLUMNS = (
    "request_id, kind, status, member_ref, received_at, due_on, updated_at, completed_at, "
    "handled_by, note, result"
)


def create_request(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    kind: str,
    identifiers: list[tuple[str, str]],
    actor: str,
    *,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    if kind not in KINDS:
        raise InputError(
            f"request kind must be one of {', '.join(KINDS)}", field="kind", value=kind
        )
    if not identifiers:
        raise InputError("give at least one identifier {type, value}", field="identifiers")
    for id_type, _ in identifiers:
        if id_type not in BLIND_INDEX_TYPES:
            raise InputError(f"unknown identifier type {id_type!r}", field="identifiers")
    vault = vault_for(settings)
    id_type, stored = _stored(settings, identifiers[:1])[0]
    member_ref = f"{id_type}:bi:{vault.bidx(id_type, identifiers[0][1])}"
    if id_type in ENCRYPTED_ID_TYPES:
        member_ref = f"{id_type}:bi:{stored}"
    received = received_at or _now()
    request_id = "dsr_" + uuid.uuid4().hex[:16]
    subject = vault.seal(json.dumps(identifiers, ensure_ascii=False), CTX_DSR)
    cur.execute(
        "INSERT INTO dsr_requests (request_id, kind, status, member_ref, subject, received_at, "
        "due_on, updated_at, handled_by) VALUES (?, ?, 'received', ?, ?, ?, ?, ?, ?)",
        [
            request_id,
            kind,
            member_ref,
            subject,
            received,
            due_date(received.date()),
            _now(),
            actor,
        ],
    )
    return get_request(cur, request_id)


def get_request(cur: duckdb.DuckDBPyConnection, request_id: str) -> dict[str, Any]:
    row = cur.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM dsr_requests WHERE request_id = ?", [request_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"no request {request_id!r}", field="request_id", value=request_id)
    return _request_row(row)


def list_requests(
    cur: duckdb.DuckDBPyConnection, status: str | None = None
) -> list[dict[str, Any]]:
    sql = f"SELECT {_REQUEST_COLUMNS} FROM dsr_requests"
    params: list[Any] = []
    if status:
        sql += " WHERE status = ?"
        params.append(status)
    rows = cur.execute(sql + " ORDER BY due_on, received_at", params).fetchall()
    return [_request_row(r) for r in rows]


def request_identifiers(
    cur: duckdb.DuckDBPyConnection, settings: Settings, request_id: str
) -> list[tuple[str, str]]:
    row = cur.execute(
        "SELECT subject FROM dsr_requests WHERE request_id = ?", [request_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"no request {request_id!r}", field="request_id", value=request_id)
    return [(str(t), str(v)) for t, v in json.loads(vault_for(settings).open(row[0], CTX_DSR))]


def set_status(
    cur: duckdb.DuckDBPyConnection,
    request_id: str,
    status: str,
    actor: str,
    *,
    note: str | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if status not in STATUSES:
        raise InputError(
            f"status must be one of {', '.join(STATUSES)}", field="status", value=status
        )
    current = get_request(cur, request_id)
    if current["status"] in ("completed", "rejected"):
        raise InputError(
            f"request {request_id} is already {current['status']}",
            field="status",
            rule="dsr.closed",
        )
    now = _now()
    cur.execute(
        "UPDATE dsr_requests SET status = ?, updated_at = ?, handled_by = ?, "
        "note = coalesce(?, note), result = coalesce(?, result), "
        "completed_at = CASE WHEN ? IN ('completed', 'rejected') THEN ? END "
        "WHERE request_id = ?",
        [
            status,
            now,
            actor,
            note,
            None if result is None else json.dumps(result, sort_keys=True),
            status,
            now,
            request_id,
        ],
    )
    return get_request(cur, request_id)


# --------------------------------------------------------------------------- access


def _member_tables(cur: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """table -> the column naming the record ('record_id') or person ('one_id')."""
    rows = cur.execute(
        "SELECT table_name, list(column_name) FROM information_schema.columns "
        "WHERE table_schema = 'main' GROUP BY table_name ORDER BY table_name"
    ).fetchall()
    out: dict[str, str] = {}
    for table, columns in rows:
        if table in KEEP_TABLES or str(table).startswith("_"):
            continue
        if "record_id" in columns:
            out[str(table)] = "record_id"
        elif "one_id" in columns:
            out[str(table)] = "one_id"
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rows(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    result = cur.execute(sql, params)
    names = [d[0] for d in result.description or []]
    return [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in result.fetchall()]


def _in(values: list[str]) -> str:
    return ", ".join("?" * len(values)) or "NULL"


def _plain_values(
    cur: duckdb.DuckDBPyConnection, settings: Settings, member: Member
) -> dict[str, set[str]]:
    """The member's plain personal values by kind (to find them in free-form places)."""
    out: dict[str, set[str]] = {"name": set(), "phone": set(), "email": set()}
    for c in plain_contacts(cur, settings, record_ids=member.record_ids).to_pylist():
        if c["name"]:
            out["name"].add(str(c["name"]))
    for i in plain_identifiers(cur, settings, record_ids=member.record_ids).to_pylist():
        if i["id_type"] in ("phone", "email") and i["value"]:
            out[str(i["id_type"])].add(str(i["value"]))
    return out


def _consent_refs(cur: duckdb.DuckDBPyConnection, settings: Settings, member: Member) -> list[str]:
    vault = vault_for(settings)
    refs = {f"one_id:{o}" for o in member.one_ids}
    for i in plain_identifiers(cur, settings, record_ids=member.record_ids).to_pylist():
        if i["id_type"] in BLIND_INDEX_TYPES and i["value"] and i["id_type"] != "id_card_hash":
            refs.add(f"{i['id_type']}:bi:{vault.bidx(str(i['id_type']), str(i['value']))}")
    return sorted(refs)


def _matches(text: str | None, values: dict[str, set[str]]) -> bool:
    """Does free text (a quarantine payload, a raw file line) name the member? Only strong
    identifiers count (phone in any spelling, email): a name alone may be a namesake."""
    if not text:
        return False
    squeezed = "".join(ch for ch in text if ch not in " -()")
    low = text.lower()
    for phone in values["phone"]:
        national = phone[3:] if phone.startswith("+86") else phone.lstrip("+")
        if national in squeezed:
            return True
    return any(e in low for e in values["email"])


def _quarantine_of(
    cur: duckdb.DuckDBPyConnection, vault: Vault, values: dict[str, set[str]]
) -> list[dict[str, Any]]:
    out = []
    for row in _rows(cur, "SELECT * FROM quarantine ORDER BY quarantine_id", []):
        row["value"] = vault.open_or_none(row["value"], CTX_QUARANTINE_VALUE)
        row["payload"] = vault.open_or_none(row["payload"], CTX_QUARANTINE_PAYLOAD)
        if _matches(row["value"], values) or _matches(row["payload"], values):
            out.append(row)
    return out


def export_member(
    cur: duckdb.DuckDBPyConnection, settings: Settings, member: Member
) -> dict[str, Any]:
    """Everything held about the member, decrypted (the data subject's copy)."""
    vault = vault_for(settings)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, column in _member_tables(cur).items():
        keys = member.record_ids if column == "record_id" else member.one_ids
        if not keys:
            continue
        rows = _rows(
            cur, f'SELECT * FROM "{table}" WHERE "{column}" IN ({_in(keys)}) ORDER BY 1', keys
        )
        if rows:
            tables[table] = rows
    for row in tables.get("contacts", []):
        row["name"] = vault.open_or_none(row.get("name"), CTX_NAME)
        row.pop("name_bidx", None)
    if "record_identifiers" in tables:
        plain = {
            (i["record_id"], i["id_type"], i["id_value"]): i["value"]
            for i in plain_identifiers(cur, settings, record_ids=member.record_ids).to_pylist()
        }
        for row in tables["record_identifiers"]:
            row["id_value"] = plain.get(
                (row["record_id"], row["id_type"], row["id_value"]), row["id_value"]
            )
            row.pop("id_value_enc", None)
    for row in tables.get("events", []):
        for col in ("traits", "context", "properties"):
            row[col] = reveal_json(row.get(col), vault)
    raw = _rows(
        cur,
        "SELECT seq, source_id, message_id, received_at, payload FROM raw_events "
        f"WHERE source_id || ':' || message_id IN ({_in(member.record_ids)}) ORDER BY seq",
        member.record_ids,
    )
    for row in raw:
        row["payload"] = reveal_json(row["payload"], vault)
    if raw:
        tables["raw_events"] = raw
    refs = _consent_refs(cur, settings, member)
    if refs:
        consents = _rows(
            cur,
            f"SELECT * FROM consents WHERE member_ref IN ({_in(refs)}) ORDER BY occurred_at, seq",
            refs,
        )
        if consents:
            tables["consents"] = consents
    quarantined = _quarantine_of(cur, vault, _plain_values(cur, settings, member))
    if quarantined:
        tables["quarantine"] = quarantined
    return {
        "member": {
            "one_ids": member.one_ids,
            "record_ids": member.record_ids,
            "resolved_by": member.resolved_by,
        },
        "exported_at": _now().isoformat() + "Z",
        "tables": tables,
    }


def export_zip(data: dict[str, Any]) -> bytes:
    """The export as a zip: member.json (everything) and one CSV per table."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("member.json", json.dumps(data, ensure_ascii=False, indent=2, default=str))
        for table, rows in data["tables"].items():
            out = io.StringIO()
            columns = list(dict.fromkeys(k for r in rows for k in r))
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                        for k, v in r.items()
                    }
                )
            zf.writestr(f"{table}.csv", "\ufeff" + out.getvalue())
    return buf.getvalue()


# --------------------------------------------------------------------------- correction


def correct_field(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    member: Member,
    field_name: str,
    new_value: str,
    actor: str,
    request_id: str | None = None,
) -> int:
    """Set `field_name` on every record of the member; history in profile_corrections."""
    if field_name not in CORRECTABLE:
        raise InputError(
            f"field must be one of {', '.join(CORRECTABLE)}", field="field", value=field_name
        )
    vault = vault_for(settings)
    now = _now()
    changed = 0
    if field_name in ("phone", "email"):
        if field_name == "phone":
            from mecdp.clean.rules import phone_to_e164

            normal = phone_to_e164(new_value)
            if normal is None:
                raise InputError("not a valid phone number", field="value", rule="phone.invalid")
        else:
            normal = new_value.strip().lower()
            if "@" not in normal:
                raise InputError("not a valid email", field="value", rule="email.invalid")
        idents = plain_identifiers(cur, settings, record_ids=member.record_ids).to_pylist()
        for ident in idents:
            if ident["id_type"] != field_name:
                continue
            cur.execute(
                "UPDATE record_identifiers SET id_value = ?, id_value_enc = ? "
                "WHERE record_id = ? AND id_type = ? AND id_value = ?",
                [
                    vault.bidx(field_name, normal),
                    vault.seal(normal, "record_identifiers.id_value"),
                    ident["record_id"],
                    field_name,
                    ident["id_value"],
                ],
            )
            _history(
                cur,
                vault,
                (request_id, ident["record_id"], field_name),
                (ident["value"], normal),
                actor,
                now,
            )
            changed += 1
        return changed
    for contact in plain_contacts(cur, settings, record_ids=member.record_ids).to_pylist():
        old = contact[field_name]
        if field_name == "name":
            cur.execute(
                "UPDATE contacts SET name = ?, name_bidx = ? WHERE record_id = ?",
                [
                    vault.seal(new_value.strip(), CTX_NAME),
                    vault.bidx("name", new_value),
                    contact["record_id"],
                ],
            )
        else:
            cur.execute(
                f"UPDATE contacts SET {field_name} = ? WHERE record_id = ?",
                [new_value, contact["record_id"]],
            )
        _history(
            cur,
            vault,
            (request_id, contact["record_id"], field_name),
            (None if old is None else str(old), new_value),
            actor,
            now,
        )
        changed += 1
    return changed


def _history(
    cur: duckdb.DuckDBPyConnection,
    vault: Vault,
    what: tuple[str | None, str, str],
    change: tuple[str | None, str],
    actor: str,
    now: datetime,
) -> None:
    request_id, record_id, field_name = what
    old, new = change
    cur.execute(
        "INSERT INTO profile_corrections (correction_id, request_id, record_id, field, "
        "old_value, new_value, corrected_by, corrected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            "cor_" + uuid.uuid4().hex[:16],
            request_id,
            record_id,
            field_name,
            None if old is None else vault.seal(old, CTX_CORRECTION),
            vault.seal(new, CTX_CORRECTION),
            actor,
            now,
        ],
    )


def corrections(
    cur: duckdb.DuckDBPyConnection, settings: Settings, member: Member
) -> list[dict[str, Any]]:
    vault = vault_for(settings)
    rows = _rows(
        cur,
        f"SELECT * FROM profile_corrections WHERE record_id IN ({_in(member.record_ids)}) "
        "ORDER BY corrected_at",
        member.record_ids,
    )
    for r in rows:
        r["old_value"] = vault.open_or_none(r["old_value"], CTX_CORRECTION)
        r["new_value"] = vault.open_or_none(r["new_value"], CTX_CORRECTION)
    return rows


# --------------------------------------------------------------------------- deletion


def delete_member(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    member: Member,
    request_id: str,
) -> dict[str, int]:
    """Erase the member's data (inside the caller's transaction); counts per table.

    Raw file copies are rewritten by `rewrite_raw_files` (after the commit), and the store
    compacted by the caller (`Store.compact`).
    """
    vault = vault_for(settings)
    counts: dict[str, int] = {}
    ids = member.record_ids
    values = _plain_values(cur, settings, member)
    # medical records the law requires to keep: out of every queried table, encrypted
    for kind in RESTRICTED_KINDS:
        rows = _rows(cur, f"SELECT * FROM {kind} WHERE record_id IN ({_in(ids)})", ids)
        for row in rows:
            cur.execute(
                "INSERT INTO restricted_records VALUES (?, ?, ?, ?, ?, ?)",
                [
                    row["record_id"],
                    kind,
                    request_id,
                    vault.seal(json.dumps(row, ensure_ascii=False), CTX_RESTRICTED),
                    _now(),
                    None,
                ],
            )
        counts[f"restricted.{kind}"] = len(rows)
    n = cur.execute(
        f"DELETE FROM raw_events WHERE source_id || ':' || message_id IN ({_in(ids)}) "
        "RETURNING seq",
        ids,
    ).fetchall()
    counts["raw_events"] = len(n)
    for table, column in _member_tables(cur).items():
        keys = ids if column == "record_id" else member.one_ids
        if not keys:
            continue
        gone = cur.execute(
            f'DELETE FROM "{table}" WHERE "{column}" IN ({_in(keys)}) RETURNING 1', keys
        ).fetchall()
        if gone:
            counts[table] = len(gone)
    if _table_exists(cur, "identity_match_pairs"):
        gone = cur.execute(
            f"DELETE FROM identity_match_pairs WHERE record_id_l IN ({_in(ids)}) "
            f"OR record_id_r IN ({_in(ids)}) RETURNING 1",
            ids + ids,
        ).fetchall()
        counts["identity_match_pairs"] = len(gone)
    quarantined = [q["quarantine_id"] for q in _quarantine_of(cur, vault, values)]
    if quarantined:
        cur.execute(
            f"DELETE FROM quarantine WHERE quarantine_id IN ({_in(quarantined)})", quarantined
        )
        counts["quarantine"] = len(quarantined)
    for one_id in member.one_ids:
        cur.execute("DELETE FROM member_keys WHERE member_ref = ?", [f"one_id:{one_id}"])
    serving.changed(cur, [serving.one_id_name(o) for o in member.one_ids])
    return counts


def erasure_values(
    cur: duckdb.DuckDBPyConnection, settings: Settings, member: Member
) -> dict[str, set[str]]:
    """The plain values `rewrite_raw_files` removes (read before the rows are deleted)."""
    return _plain_values(cur, settings, member)


def rewrite_raw_files(settings: Settings, values: dict[str, set[str]]) -> dict[str, int]:
    """Rewrite every sealed raw file copy without the lines naming the member.

    Line-based formats (CSV, JSON lines, text) drop the matching lines (the header line is
    kept). Binary formats (xlsx, parquet) are decrypted, filtered through pyarrow (parquet)
    or openpyxl (xlsx) and sealed again. Returns {file name: lines removed}.
    """
    vault = vault_for(settings)
    out: dict[str, int] = {}
    for path in sorted(settings.raw_files_dir.glob("*.enc")):
        plain = b"".join(open_file(path, vault))
        fmt = path.name.split(".")[-2]
        removed, kept = _filter_bytes(plain, fmt, values)
        if removed:
            tmp = path.with_name(".plain-" + path.name)
            tmp.write_bytes(kept)
            try:
                path.chmod(0o600)
                path.unlink()
                seal_file(tmp, path, vault)
            finally:
                tmp.unlink(missing_ok=True)
            out[path.name] = removed
    return out


def _filter_bytes(data: bytes, fmt: str, values: dict[str, set[str]]) -> tuple[int, bytes]:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        rows = table.to_pylist()
        keep = [r for r in rows if not _matches(json.dumps(r, ensure_ascii=False), values)]
        if len(keep) == len(rows):
            return 0, data
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(keep, schema=table.schema), buf)
        return len(rows) - len(keep), buf.getvalue()
    if fmt == "xlsx":
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(data))
        removed = 0
        for sheet in book.worksheets:
            for index in range(sheet.max_row, 1, -1):
                cells = [str(c.value) for c in sheet[index] if c.value is not None]
                if _matches(" ".join(cells), values):
                    sheet.delete_rows(index)
                    removed += 1
        if not removed:
            return 0, data
        buf = io.BytesIO()
        book.save(buf)
        return removed, buf.getvalue()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = data.decode("utf-8", errors="replace")
        encoding = "utf-8"
    lines = text.splitlines(keepends=True)
    head, body = lines[:1], lines[1:]
    if fmt in ("jsonl", "json", "ndjson"):
        head, body = [], lines
    keep = [line for line in body if not _matches(line, values)]
    if len(keep) == len(body):
        return 0, data
    result = "".join(head + keep)
    return len(body) - len(keep), result.encode("utf-8" if encoding == "utf-8-sig" else encoding)


def restricted_records(
    cur: duckdb.DuckDBPyConnection, settings: Settings, request_id: str | None = None
) -> list[dict[str, Any]]:
    """The restricted medical records, decrypted (compliance only; audit the read)."""
    vault = vault_for(settings)
    sql = (
        "SELECT record_id, record_kind, request_id, document, restricted_at FROM restricted_records"
    )
    params: list[Any] = []
    if request_id:
        sql += " WHERE request_id = ?"
        params.append(request_id)
    rows = _rows(cur, sql + " ORDER BY restricted_at", params)
    for r in rows:
        r["document"] = json.loads(vault.open(r["document"], CTX_RESTRICTED))
    return rows


def raw_file_paths(settings: Settings) -> list[Path]:
    return sorted(settings.raw_files_dir.glob("*.enc"))


# --------------------------------------------------------------------------- audited operations
# What the API routes and the CLI verbs call: one transaction each, with its audit row.


def _audit_entry(actor: str, role: str | None, action: str, **kwargs: Any) -> Any:
    from mecdp.privacy.audit import AuditEntry

    return AuditEntry(actor=actor, actor_role=role, action=action, **kwargs)


def open_request(
    store: Any,
    settings: Settings,
    kind: str,
    identifiers: list[tuple[str, str]],
    actor: str,
    role: str | None,
) -> dict[str, Any]:
    from mecdp.privacy.audit import HEAD_FILE, append_audit, audited_transaction

    with audited_transaction(store, head_file=settings.secrets_dir / HEAD_FILE) as cur:
        request = create_request(cur, settings, kind, identifiers, actor)
        append_audit(
            cur,
            _audit_entry(
                actor,
                role,
                "dsr.received",
                target=f"dsr:{request['request_id']}",
                member_refs=[request["member_ref"]],
                purpose="data_subject_request",
                detail={"kind": kind, "due_on": request["due_on"]},
            ),
        )
    return request


def change_status(
    store: Any,
    settings: Settings,
    request_id: str,
    status: str,
    actor: str,
    role: str | None,
    note: str | None = None,
) -> dict[str, Any]:
    from mecdp.privacy.audit import HEAD_FILE, append_audit, audited_transaction

    with audited_transaction(store, head_file=settings.secrets_dir / HEAD_FILE) as cur:
        request = set_status(cur, request_id, status, actor, note=note)
        append_audit(
            cur,
            _audit_entry(
                actor,
                role,
                f"dsr.{status}",
                target=f"dsr:{request_id}",
                member_refs=[request["member_ref"]],
                purpose="data_subject_request",
            ),
        )
    return request


def run_export(
    store: Any, settings: Settings, request_id: str, actor: str, role: str | None
) -> dict[str, Any]:
    """The access/copy export of a request's member (audited as an export)."""
    from mecdp.privacy.audit import HEAD_FILE, append_audit, audited_transaction

    with audited_transaction(store, head_file=settings.secrets_dir / HEAD_FILE) as cur:
        request = get_request(cur, request_id)
        member = resolve_member(cur, settings, request_identifiers(cur, settings, request_id))
        data = export_member(cur, settings, member)
        data["corrections"] = corrections(cur, settings, member)
        data["request"] = request
        append_audit(
            cur,
            _audit_entry(
                actor,
                role,
                "personal_data.exported",
                target=f"dsr:{request_id}",
                member_refs=[request["member_ref"], *(f"one_id:{o}" for o in member.one_ids)],
                purpose="data_subject_request",
                detail={"tables": {t: len(r) for t, r in data["tables"].items()}},
            ),
        )
    return data


def run_correction(
    store: Any,
    settings: Settings,
    request_id: str,
    field_name: str,
    value: str,
    actor: str,
    role: str | None,
) -> dict[str, Any]:
    from mecdp.privacy.audit import HEAD_FILE, append_audit, audited_transaction

    with audited_transaction(store, head_file=settings.secrets_dir / HEAD_FILE) as cur:
        request = get_request(cur, request_id)
        if request["kind"] != "correction":
            raise InputError("this request is not a correction", field="kind", rule="dsr.kind")
        member = resolve_member(cur, settings, request_identifiers(cur, settings, request_id))
        changed = correct_field(cur, settings, member, field_name, value, actor, request_id)
        append_audit(
            cur,
            _audit_entry(
                actor,
                role,
                "personal_data.corrected",
                target=f"dsr:{request_id}",
                member_refs=[request["member_ref"]],
                purpose="data_subject_request",
                detail={"field": field_name, "records": changed},
            ),
        )
    return {"request_id": request_id, "field": field_name, "records": changed}


def run_deletion(
    store: Any,
    settings: Settings,
    request_id: str,
    actor: str,
    role: str | None,
    compact: Callable[[], None],
) -> dict[str, Any]:
    """Erase the request's member everywhere, rewrite the raw files, compact the store
    (`compact` stops what holds cursors, calls `Store.compact`, restarts), complete."""
    from mecdp.privacy.audit import HEAD_FILE, append_audit, audited_transaction

    head = settings.secrets_dir / HEAD_FILE
    with audited_transaction(store, head_file=head) as cur:
        request = get_request(cur, request_id)
        if request["kind"] != "deletion":
            raise InputError("this request is not a deletion", field="kind", rule="dsr.kind")
        if request["status"] in ("completed", "rejected"):
            raise InputError(
                f"request {request_id} is already {request['status']}",
                field="status",
                rule="dsr.closed",
            )
        member = resolve_member(cur, settings, request_identifiers(cur, settings, request_id))
        values = erasure_values(cur, settings, member)
        counts = delete_member(cur, settings, member, request_id)
        set_status(cur, request_id, "in_progress", actor)
    files = rewrite_raw_files(settings, values)
    compact()
    result = {"tables": counts, "raw_files": files, "records": len(member.record_ids)}
    with audited_transaction(store, head_file=head) as cur:
        done = set_status(cur, request_id, "completed", actor, result=result)
        append_audit(
            cur,
            _audit_entry(
                actor,
                role,
                "personal_data.deleted",
                target=f"dsr:{request_id}",
                member_refs=[request["member_ref"], *(f"one_id:{o}" for o in member.one_ids)],
                purpose="data_subject_request",
                detail=result,
            ),
        )
    return done


def run_purge(
    store: Any, settings: Settings, actor: str, role: str | None, now: datetime | None = None
) -> dict[str, int]:
    """The retention purge job, audited (the server's scheduler calls it daily)."""
    from mecdp.privacy.audit import HEAD_FILE, append_audit, audited_transaction
    from mecdp.privacy.retention import purge

    with audited_transaction(store, head_file=settings.secrets_dir / HEAD_FILE) as cur:
        counts = purge(cur, settings, now=now)
        append_audit(
            cur, _audit_entry(actor, role, "retention.purged", target="retention", detail=counts)
        )
    return counts

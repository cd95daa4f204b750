"""The file import service: one file of one source into the canonical tables.

Steps, for one file:

1. Keep the bytes: an immutable copy at `raw_files_dir/<sha256>.<ext>.enc` (the raw log of
   bulk data), encrypted with the workspace key ring (`mecdp.privacy.vault.seal_file`).
   `import_id = sha256(source_id + file sha256)`; a file already imported for the source
   changes nothing (`already_imported`).
2. Read it (`readers`) into an all-text staging table, match its headers to the kind's
   fields (`mapping`); missing required columns stop the import before anything is written.
3. Clean (`mecdp.clean.stage.clean_work`): one materialised table of cleaned rows; records,
   contacts and identifiers stay queries over it, rejects become a small table. Each
   distinct name, phone and email is encrypted / blind-indexed once (`mecdp.privacy.vault`)
   into a lookup the inserts join.
4. Write in ONE transaction: new records (anti-join on record_id when the table has rows;
   filtered only when some are stored already), their contacts and identifiers, one
   quarantine row per failing field (payload = the original row under the file's own
   headers, id-card numbers masked, then value and payload encrypted), the `file_imports`
   and `ingest_log` rows.
   Bad rows never stop the good ones.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from collections.abc import Mapping as MappingType
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mecdp.clean.kinds import RECORD_KINDS, FieldType, RecordKind
from mecdp.clean.rules import lit
from mecdp.clean.stage import CleanWork
from mecdp.collect.mapping import HeaderMatch, Mapping, load_mapping
from mecdp.collect.readers import (
    ParseReject,
    RawFile,
    detect_format,
    read_file,
    scan_file,
)
from mecdp.collect.sources import get_source
from mecdp.config import Settings
from mecdp.errors import InputError
from mecdp.privacy.masking import mask_value
from mecdp.privacy.vault import (
    ENCRYPTED_ID_TYPES,
    PERSONAL_FIELDS,
    Vault,
    insert_quarantine,
    seal_contacts_table,
    seal_file,
    seal_identifiers_table,
    vault_for,
)
from mecdp.store.duckdb_store import Store

SAMPLE_REJECTS = 20
Progress = Callable[[int, int], None]

# Share of the progress bar each phase fills.
_READ, _CLEAN = 0.5, 0.85

# RE2 pattern of an 18-character id-card number with non-alphanumeric (or no) neighbours;
# the replacement keeps the first 4 and the last 4 characters.
_ID_CARD_RE = r"(^|[^0-9A-Za-z])([0-9]{4})[0-9]{10}([0-9]{3}[0-9Xx])($|[^0-9A-Za-z])"
_ID_CARD_MASK = r"\1\2**********\3\4"


@dataclass
class ImportReport:
    """What one `import_file` did; `to_dict` is the CLI/API answer."""

    import_id: str
    source_id: str
    file_name: str
    file_format: str
    encoding: str | None
    mapping: str
    rows_read: int
    accepted: int
    quarantined: int
    duplicates: int
    already_imported: bool
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    sample_rejects: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _ImportSession:
    """One long-lived cursor and engine per store for imports.

    DuckDB scalar functions are database-wide, but only the connection that created one may
    replace it; the cleaning stage registers its UDFs on every run, so every import of a
    store goes through the same engine (serialised by the lock).
    """

    cursor: duckdb.DuckDBPyConnection
    engine: Any
    lock: threading.Lock


_SESSIONS: weakref.WeakKeyDictionary[Store, _ImportSession] = weakref.WeakKeyDictionary()
_SESSIONS_LOCK = threading.Lock()


def _session(store: Store) -> _ImportSession:
    from mecdp.store.engine import DuckDBEngine

    with _SESSIONS_LOCK:
        session = _SESSIONS.get(store)
        if session is None:
            cursor = store.con.cursor()
            session = _ImportSession(cursor, DuckDBEngine(cursor), threading.Lock())
            _SESSIONS[store] = session
        return session


@contextmanager
def _import_transaction(store: Store) -> Iterator[tuple[duckdb.DuckDBPyConnection, Any]]:
    """BEGIN/COMMIT on the store's import cursor; rolled back if the block raises."""
    session = _session(store)
    with session.lock:
        cur = session.cursor
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur, session.engine
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _masked_sql(expr: str) -> str:
    """SQL masking a whole id-card value: first 4 and last 4 characters kept."""
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL "
        f"WHEN length({expr}) > 8 THEN left({expr}, 4) || repeat('*', length({expr}) - 8) "
        f"|| right({expr}, 4) ELSE repeat('*', length({expr})) END"
    )


def _scrub_sql(expr: str) -> str:
    """SQL masking every id-card-shaped number inside free text."""
    return f"regexp_replace({expr}, {lit(_ID_CARD_RE)}, {lit(_ID_CARD_MASK)}, 'g')"


def _resolve_mapping(
    settings: Settings,
    source_kind: str,
    source_mapping: str | None,
    mapping: str | None,
    source_id: str,
) -> Mapping:
    name = mapping or source_mapping
    if not name:
        raise InputError(
            f"source {source_id!r} has no mapping; pass one (a shipped name or a YAML file)",
            field="mapping",
            rule="import.mapping",
        )
    loaded = load_mapping(name, settings.workspace)
    if loaded.kind != source_kind:
        raise InputError(
            f"mapping {loaded.name!r} is for {loaded.kind} but source {source_id!r} "
            f"collects {source_kind}",
            field="mapping",
            value=loaded.name,
            rule="import.kind_mismatch",
        )
    return loaded


def _defaults(mapping: Mapping, kind: RecordKind, source_channel: str) -> dict[str, str]:
    """The mapping's defaults; the source's own channel is the default channel."""
    defaults = dict(mapping.defaults)
    if any(f.name == "channel" for f in kind.fields):
        defaults["channel"] = source_channel
    return defaults


def _missing_columns_error(
    path: Path, mapping: Mapping, missing: list[str], headers: list[str]
) -> InputError:
    accepted = "; ".join(f"{f}: {', '.join(mapping.accepted_headers(f))}" for f in missing)
    return InputError(
        f"{path.name}: missing required column(s) {', '.join(missing)} for {mapping.kind} "
        f"(mapping {mapping.name}); accepted headers — {accepted}. "
        f"The file has: {', '.join(headers) or '(no headers)'}",
        field=missing[0],
        rule="file.missing_columns",
        file=path.name,
        missing=missing,
        accepted={f: mapping.accepted_headers(f) for f in missing},
    )


def _create_staged(
    cur: duckdb.DuckDBPyConnection, raw: RawFile, match: HeaderMatch, name: str
) -> None:
    """A view with _row, _ref and one VARCHAR column per field the file has.

    Fields the file lacks are left out: the cleaning stage fills them from the defaults
    (and checks no rule on a field that can never carry a value).
    """
    ref_prefix = lit(raw.path.name + ":")
    columns = [f"({raw.row_sql})::BIGINT AS _row", f"{ref_prefix} || ({raw.row_sql}) AS _ref"]
    for field_name, index in sorted(match.fields.items(), key=lambda item: item[1]):
        columns.append(f"c{index} AS {_ident(field_name)}")
    cur.execute(f"CREATE TEMP VIEW {name} AS SELECT {', '.join(columns)} FROM {raw.table}")


def _payload_sql(raw: RawFile, masked_columns: set[int]) -> str:
    """SQL of the original row as a JSON object under the file's own headers."""
    parts = []
    for index, header in enumerate(raw.headers):
        column = f"raw.c{index}"
        value = _masked_sql(column) if index in masked_columns else column
        parts.append(f"{lit(header)}, {value}")
    if not parts:
        return "'{}'"
    return _scrub_sql(f"json_object({', '.join(parts)})::VARCHAR")


def _table_columns(cur: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = cur.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _query_columns(cur: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    description = cur.execute(f"SELECT * FROM {name} LIMIT 0").description or []
    return [str(d[0]) for d in description]


def _insert_matching(
    cur: duckdb.DuckDBPyConnection,
    target: str,
    source_sql: str,
    available: list[str],
    *,
    extra: MappingType[str, str] | None = None,
) -> None:
    """INSERT the columns `target` and the source share (plus constant `extra` columns)."""
    extra = dict(extra or {})
    columns = [c for c in _table_columns(cur, target) if c in available or c in extra]
    select = ", ".join(extra.get(c, _ident(c)) if c in extra else _ident(c) for c in columns)
    names = ", ".join(_ident(c) for c in columns)
    cur.execute(f"INSERT INTO {target} ({names}) SELECT {select} FROM ({source_sql})")


def _parse_rejects_table(rejects: list[ParseReject]) -> pa.Table:
    return pa.table(
        {
            "_row": pa.array([r.row for r in rejects], pa.int64()),
            "rule": pa.array([r.rule for r in rejects], pa.string()),
            "reason": pa.array([r.reason for r in rejects], pa.string()),
            "payload": pa.array(
                [json.dumps({"raw": r.raw}, ensure_ascii=False) for r in rejects], pa.string()
            ),
        }
    )


def _already_imported(
    cur: duckdb.DuckDBPyConnection, import_id: str, mapping: Mapping
) -> ImportReport | None:
    row = cur.execute(
        "SELECT source_id, file_name, file_format, encoding, rows_read, accepted, quarantined, "
        "duplicates FROM file_imports WHERE import_id = ?",
        [import_id],
    ).fetchone()
    if row is None:
        return None
    return ImportReport(
        import_id=import_id,
        source_id=str(row[0]),
        file_name=str(row[1]),
        file_format=str(row[2]),
        encoding=None if row[3] is None else str(row[3]),
        mapping=mapping.name,
        rows_read=int(row[4]),
        accepted=int(row[5]),
        quarantined=int(row[6]),
        duplicates=int(row[7]),
        already_imported=True,
    )


def import_file(
    store: Store,
    settings: Settings,
    path: Path,
    *,
    source_id: str,
    mapping: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one file for a registered source; see the module docstring."""
    from mecdp.clean.stage import CleanOptions, clean_work, drop_work

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"no such file: {path}", field="file", value=str(path), rule="file.missing"
        )
    source = get_source(store.cursor(), source_id)
    if source.kind not in RECORD_KINDS:
        raise InputError(
            f"source {source_id!r} collects {source.kind}, not records; files need a record "
            f"source (one of: {', '.join(RECORD_KINDS)})",
            field="source",
            value=source_id,
            rule="import.source_kind",
        )
    loaded = _resolve_mapping(settings, source.kind, source.mapping, mapping, source_id)
    kind = RECORD_KINDS[loaded.kind]
    scan = scan_file(path)
    file_format = detect_format(path, scan.first_bytes)
    vault = vault_for(settings)
    raw_copy(path, settings, scan.sha256, file_format, vault)
    import_id = hashlib.sha256((source_id + scan.sha256).encode()).hexdigest()
    estimate = max(scan.lines - 1, 0)

    def report_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(min(done, total), total)

    report_progress(0, estimate)
    prefix = f"_imp_{import_id[:16]}"
    with _import_transaction(store) as (cur, engine):
        done = _already_imported(cur, import_id, loaded)
        if done is not None:
            return done

        def reading(rows: int, total: int) -> None:
            report_progress(int(rows * _READ), total)

        raw = read_file(cur, path, f"{prefix}_raw", scan=scan, progress=reading)
        total = raw.rows_read
        report_progress(int(total * _READ), total)
        match = loaded.match(raw.headers)
        defaults = _defaults(loaded, kind, source.channel)
        missing = [f for f in kind.required if f not in match.fields and f not in defaults]
        if missing:
            raise _missing_columns_error(path, loaded, missing, raw.headers)

        staged = f"{prefix}_staged"
        _create_staged(cur, raw, match, staged)
        options = CleanOptions(
            source_id=source_id,
            hash_key=settings.key(),
            money_unit=loaded.money_unit,
            defaults=defaults,
        )
        work = clean_work(engine, kind, staged, options, prefix)
        rejects = f"{prefix}_rejects"
        engine.create_table_as(rejects, work.rejects)
        report_progress(int(total * _CLEAN), total)

        now = _now()
        counts = _write(cur, raw, kind, match, work, rejects, prefix, source_id, now, vault)
        accepted, rejected_rows, by_rule = counts
        duplicates = total - accepted - rejected_rows
        sample = _sample_rejects(cur, raw, match, f"{prefix}_quarantine")
        cur.execute(
            "INSERT INTO file_imports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                import_id,
                source_id,
                kind.name,
                path.name,
                scan.sha256,
                raw.file_format,
                raw.encoding,
                loaded.name,
                total,
                accepted,
                rejected_rows,
                duplicates,
                now,
            ],
        )
        cur.execute(
            "INSERT INTO ingest_log VALUES (?, 'file', ?, ?, ?, ?, ?, ?)",
            [source_id, import_id, total, accepted, rejected_rows, duplicates, now],
        )
        drop_work(engine, work.tables)
        cur.execute(f"DROP TABLE IF EXISTS {rejects}")
        cur.execute(f"DROP VIEW IF EXISTS {staged}")
        cur.execute(f"DROP TABLE IF EXISTS {prefix}_new")
        cur.execute(f"DROP TABLE IF EXISTS {prefix}_quarantine")
        cur.execute(f"DROP TABLE IF EXISTS {raw.table}")
    report_progress(total, total)
    return ImportReport(
        import_id=import_id,
        source_id=source_id,
        file_name=path.name,
        file_format=raw.file_format,
        encoding=raw.encoding,
        mapping=loaded.name,
        rows_read=total,
        accepted=accepted,
        quarantined=rejected_rows,
        duplicates=duplicates,
        already_imported=False,
        rejects_by_rule=by_rule,
        sample_rejects=sample,
    )


def _write(
    cur: duckdb.DuckDBPyConnection,
    raw: RawFile,
    kind: RecordKind,
    match: HeaderMatch,
    work: CleanWork,
    rejects: str,
    prefix: str,
    source_id: str,
    now: datetime,
    vault: Vault,
) -> tuple[int, int, dict[str, int]]:
    """Write records, contacts, identifiers and quarantine; (accepted, rejected rows, by rule).

    The outputs go straight from the cleaning stage's queries into the store (no work table
    per output); names, phones and emails are sealed through lookup tables of their distinct
    values (see `_seal_lookups`).
    """
    target = kind.table or "contacts"
    records = f"({work.records})"
    kept = _count(cur, records)
    accepted = kept
    if cur.execute(f"SELECT EXISTS (SELECT 1 FROM {target})").fetchone() != (False,):
        row = cur.execute(
            f"SELECT count(*) FROM {records} r "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE t.record_id = r.record_id)"
        ).fetchone()
        accepted = int(row[0]) if row else 0
    stamp = {"ingested_at": f"TIMESTAMP {lit(now.isoformat(sep=' '))}"}
    # Usually every cleaned record is new: then no semi-join is needed. Records new to the
    # kind's table are new everywhere (imports are all-or-nothing), so their contacts and
    # identifiers cannot conflict with stored rows and need no ON CONFLICT check.
    new = f"{prefix}_new"
    if accepted != kept:
        cur.execute(
            f"CREATE TEMP TABLE {new} AS SELECT record_id FROM {records} r "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE t.record_id = r.record_id)"
        )

    def only_new(sql: str) -> str:
        if accepted == kept:
            return sql
        return f"SELECT * FROM ({sql}) WHERE record_id IN (SELECT record_id FROM {new})"

    plain_names, plain_ids = _plain_values(cur, work)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Sealing is Python (it holds the GIL) and DuckDB releases it while it writes the
        # records: on two cores the two run side by side.
        sealing = pool.submit(_seal_values, plain_names, plain_ids, vault)
        if kind.table is not None:
            _insert_matching(
                cur,
                kind.table,
                only_new(work.records),
                _query_columns(cur, records),
                extra=stamp,
            )
        sealed_names, sealed_ids_table = sealing.result()
    names, identifiers = f"{prefix}_sealed_names", f"{prefix}_sealed_ids"
    cur.register(names, sealed_names)
    cur.register(identifiers, sealed_ids_table)
    try:
        contacts = (
            "SELECT c.* REPLACE (s.name AS name), s.name_bidx "
            f"FROM ({only_new(work.contacts)}) c LEFT JOIN {names} s ON s.plain = c.name"
        )
        _insert_matching(cur, "contacts", contacts, _query_columns(cur, f"({contacts})"))
        sealed_ids = (
            "SELECT i.* REPLACE (coalesce(s.id_value, i.id_value) AS id_value), "
            f"s.id_value_enc FROM ({only_new(work.identifiers)}) i LEFT JOIN {identifiers} s "
            "ON s.id_type = i.id_type AND s.plain = i.id_value"
        )
        _insert_matching(
            cur, "record_identifiers", sealed_ids, _query_columns(cur, f"({sealed_ids})")
        )
    finally:
        cur.unregister(names)
        cur.unregister(identifiers)

    # Quarantine: one row per failing field, payload = the original row, id cards masked.
    id_card_fields = [f.name for f in kind.fields if f.type is FieldType.ID_CARD]
    masked = {match.fields[f] for f in id_card_fields if f in match.fields}
    is_id_card = (
        f"r.field IN ({', '.join(lit(f) for f in id_card_fields)})" if id_card_fields else "false"
    )
    value_sql = f"CASE WHEN {is_id_card} THEN {_masked_sql('r.value')} ELSE r.value END"
    reason_sql = (
        f"CASE WHEN {is_id_card} AND r.value IS NOT NULL AND length(r.value) > 0 "
        f"THEN replace(r.reason, r.value, {_masked_sql('r.value')}) ELSE r.reason END"
    )
    quarantined = f"{prefix}_quarantine"
    cur.execute(
        f"CREATE TEMP TABLE {quarantined} AS "
        f"SELECT r._row, r.field, {_scrub_sql(value_sql)} AS value, r.rule, "
        f"{_scrub_sql(reason_sql)} AS reason, p.payload "
        f"FROM {rejects} r LEFT JOIN ("
        f"SELECT ({raw.row_sql})::BIGINT AS _row, {_payload_sql(raw, masked)} AS payload "
        f"FROM {raw.table} raw WHERE ({raw.row_sql}) IN (SELECT _row FROM {rejects})"
        f") p ON p._row = r._row"
    )
    if raw.rejects:
        view = f"{prefix}_parse_rejects"
        cur.register(view, _parse_rejects_table(raw.rejects))
        try:
            cur.execute(
                f"INSERT INTO {quarantined} "
                f"SELECT _row, NULL, NULL, rule, reason, payload FROM {view}"
            )
        finally:
            cur.unregister(view)
    rows = cur.execute(
        f"SELECT {lit(source_id)} AS source_id, 'file' AS origin, "
        f"{lit(kind.name)} AS record_kind, "
        f"{lit(raw.path.name + ':')} || _row AS ref, field, value, rule, reason, "
        "payload, ?::TIMESTAMP AS quarantined_at "
        f"FROM {quarantined} ORDER BY _row, field NULLS FIRST",
        [now],
    ).to_arrow_table()
    insert_quarantine(cur, rows, vault)
    row = cur.execute(f"SELECT count(DISTINCT _row) FROM {quarantined}").fetchone()
    rejected_rows = int(row[0]) if row else 0
    by_rule = {
        str(rule): int(n)
        for rule, n in cur.execute(
            f"SELECT rule, count(*) FROM {quarantined} GROUP BY rule ORDER BY rule"
        ).fetchall()
    }
    return accepted, rejected_rows, by_rule


def _plain_values(cur: duckdb.DuckDBPyConnection, work: CleanWork) -> tuple[pa.Table, pa.Table]:
    """The distinct names (`plain`) and identifiers of the encrypted types (`id_type`,
    `plain`) the import writes."""
    names = cur.execute(
        f"SELECT DISTINCT name AS plain FROM ({work.contacts}) WHERE name IS NOT NULL"
    ).to_arrow_table()
    types = ", ".join(lit(t) for t in ENCRYPTED_ID_TYPES)
    identifiers = cur.execute(
        f"SELECT id_type, id_value AS plain FROM ({work.identifier_values}) "
        f"WHERE id_type IN ({types})"
    ).to_arrow_table()
    return names, identifiers


def _seal_values(names: pa.Table, identifiers: pa.Table, vault: Vault) -> tuple[pa.Table, pa.Table]:
    """Lookups from `plain` to the sealed columns: names -> `name` (token), `name_bidx`;
    identifiers -> `id_value` (blind index), `id_value_enc` (token).

    Each distinct value is sealed once (by the vault's own table functions), so equal values
    within one file share a token: their blind index already shows they are equal.
    """
    sealed_names = seal_contacts_table(names.append_column("name", names["plain"]), vault)
    sealed_ids = seal_identifiers_table(
        identifiers.append_column("id_value", identifiers["plain"]), vault
    )
    return sealed_names, sealed_ids


def _sample_rejects(
    cur: duckdb.DuckDBPyConnection, raw: RawFile, match: HeaderMatch, quarantined: str
) -> list[dict[str, object]]:
    """The first rejects in file order, as the report shows them (values already masked)."""
    rows = cur.execute(
        f"SELECT _row, field, value, rule, reason FROM {quarantined} "
        "ORDER BY _row, field NULLS FIRST LIMIT ?",
        [SAMPLE_REJECTS],
    ).fetchall()
    out: list[dict[str, object]] = []
    for row, fld, value, rule, reason in rows:
        kind = PERSONAL_FIELDS.get(str(fld))
        if kind is not None and value:
            masked = mask_value(kind, str(value))
            reason = str(reason).replace(str(value), str(masked))
            value = masked
        out.append(
            {
                "row": int(row),
                "column": match.header_of(raw.headers, str(fld)) if fld is not None else None,
                "field": fld,
                "value": value,
                "rule": rule,
                "reason": reason,
            }
        )
    return out


def raw_copy(path: Path, settings: Settings, sha256: str, file_format: str, vault: Vault) -> Path:
    """The raw log of bulk data: `<raw_files_dir>/<sha256>.<ext>.enc`, sealed with the key ring
    (`mecdp.privacy.vault.seal_file`); kept once per content."""
    raw_dir = settings.raw_files_dir
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / f"{sha256}.{file_format}.enc"
    if target.exists():
        return target
    return seal_file(path, target, vault)


def _count(cur: duckdb.DuckDBPyConnection, table: str) -> int:
    row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0

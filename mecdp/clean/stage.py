"""The cleaning stage: a staged table of raw strings -> typed records, contacts, identifiers
and rejects, in one set-based pass on any engine.

`clean_records` builds the SQL as data (clean.rules per field, stacked into CTE layers),
runs it on the engine, and leaves four tables named `{out_prefix}_records`, `_contacts`,
`_identifiers` and `_rejects`. A record with any failing field is rejected whole; its
rejects name the field, the value (id-card numbers masked) and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mecdp.clean.kinds import PERSON_FIELDS, Field, FieldType, RecordKind
from mecdp.clean.rules import (
    PHONE_UDF,
    RULE_TEXTS,
    FieldSql,
    clean_field,
    id_card_udf,
    lit,
    sql_type,
)
from mecdp.errors import InputError
from mecdp.store.engine import Engine, SqlStep, pipeline_sql

# Kinds whose records must name someone: at least one identifier, else 'record.no_identifier'.
# Interactions and feedback may be anonymous (a chat visitor, an unsigned survey): they still
# count in per-store and per-topic reports, they just join no profile.
NEEDS_IDENTIFIER = frozenset({"orders", "appointments", "treatments"})
MONEY_UNITS = ("yuan", "fen")
_PERSON_NAMES = frozenset(f.name for f in PERSON_FIELDS)
_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class CleanOptions:
    source_id: str
    hash_key: bytes  # keyed hash secret for id-card numbers
    money_unit: str = "yuan"  # "yuan" or "fen"
    # constant raw values for absent fields, e.g. {"channel": "pos"}
    defaults: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanOutputs:
    """Names of the engine tables the stage created."""

    records: str
    contacts: str
    identifiers: str
    rejects: str


def output_column(f: Field) -> str:
    """The column name of a field in the kind's table: money fields carry `_fen`."""
    return f"{f.name}_fen" if f.type is FieldType.MONEY else f.name


def record_fields(kind: RecordKind) -> list[Field]:
    """The kind's own fields that go to its records table (plus customer_no for orders)."""
    own = [f for f in kind.fields if f.name not in _PERSON_NAMES]
    if kind.name == "orders":
        key_at = next(i for i, f in enumerate(own) if f.name == kind.key)
        own.insert(key_at + 1, kind.field("customer_no"))
    return own


def identifier_fields(kind: RecordKind) -> list[Field]:
    return [f for f in kind.fields if f.id_type]


def _validate(kind: RecordKind, options: CleanOptions, out_prefix: str) -> None:
    if options.money_unit not in MONEY_UNITS:
        raise InputError(
            f"money unit must be one of {', '.join(MONEY_UNITS)}, not {options.money_unit!r}",
            field="money_unit",
            value=options.money_unit,
        )
    if not _IDENTIFIER_RE.match(out_prefix):
        raise InputError(f"output prefix {out_prefix!r} is not a plain table name")
    unknown = sorted(set(options.defaults) - {f.name for f in kind.fields})
    if unknown:
        raise InputError(
            f"defaults name fields that {kind.name} does not have: {', '.join(unknown)}",
            field="defaults",
        )


def field_rules(kind: RecordKind, options: CleanOptions) -> dict[str, FieldSql]:
    """The cleaning SQL of every field of `kind`, over the raw columns `r__<field>`."""
    return {
        f.name: clean_field(f"r__{f.name}", f, f"h__{f.name}", money_unit=options.money_unit)
        for f in kind.fields
    }


def _layers(rules: list[FieldSql]) -> list[list[tuple[str, str]]]:
    """Stack every helper column into the first SELECT layer after the ones it refers to."""
    level: dict[str, int] = {}
    layers: list[list[tuple[str, str]]] = []
    for rule in rules:
        names: list[str] = []
        for name, sql in rule.helpers:
            deps = [n for n in names if re.search(rf"\b{re.escape(n)}\b", sql)]
            at = 1 + max((level[d] for d in deps), default=-1)
            level[name] = at
            names.append(name)
            while len(layers) <= at:
                layers.append([])
            layers[at].append((name, sql))
    return layers


def _reason_sql(f: Field, value: str, rule: str) -> str:
    """The human sentence of a reject: names the field, the value and the rule."""
    whens = " ".join(
        f"WHEN {lit(r)} THEN {lit(text)}"
        for r, text in RULE_TEXTS.items()
        if r.startswith(f"{f.type.value}.")
    )
    text = f"CASE {rule} {whens} ELSE 'is invalid' END" if whens else "'is invalid'"
    return (
        f"CASE WHEN {rule} LIKE '%.required' THEN 'field ''{f.name}'' is required but empty' "
        f"ELSE 'field ''{f.name}'': value ''' || coalesce({value}, '') || ''' ' || "
        f"{text} END || ' (' || {rule} || ')'"
    )


@dataclass(frozen=True)
class _Cleaned:
    """Which fields carry values in the cleaned table (the others are NULL everywhere)."""

    kind: RecordKind
    live: frozenset[str]
    required_absent: frozenset[str]

    def value(self, f: Field) -> str:
        return f"v__{f.name}" if f.name in self.live else f"CAST(NULL AS {sql_type(f.type)})"

    def has_error(self, f: Field) -> bool:
        return f.name in self.live or f.name in self.required_absent


def _liveness(kind: RecordKind, staged_columns: list[str], options: CleanOptions) -> _Cleaned:
    present = set(staged_columns) | set(options.defaults)
    live = frozenset(f.name for f in kind.fields if f.name in present)
    absent_required = frozenset(f.name for f in kind.fields if f.required and f.name not in live)
    return _Cleaned(kind, live, absent_required)


def build_clean_steps(
    kind: RecordKind, staged: str, staged_columns: list[str], options: CleanOptions
) -> list[SqlStep]:
    """The SQL steps that type and check every field; the last step is the cleaned table:
    `_row, _ref, record_id, _bad`, the typed values `v__<field>`, the errors `e__<field>`
    (plus `e__record`) and, on bad rows only, the raw values `r__<field>`. Only fields the
    staged table has (or defaults) get columns: absent fields are NULL in every output."""
    c = _liveness(kind, staged_columns, options)
    source_id = lit(options.source_id)
    present = set(staged_columns)
    fields = [f for f in kind.fields if f.name in c.live]

    # 1. raw values: staged columns, with defaults filling NULLs or absent columns
    raw_cols: list[str] = []
    for f in fields:
        default = options.defaults.get(f.name)
        raw = f"CAST({f.name} AS VARCHAR)" if f.name in present else "CAST(NULL AS VARCHAR)"
        if default is not None:
            raw = f"coalesce({raw}, {lit(default)})"
        raw_cols.append(f"{raw} AS r__{f.name}")
    steps = [
        SqlStep(
            "SELECT CAST(_row AS BIGINT) AS _row, CAST(_ref AS VARCHAR) AS _ref"
            + "".join(f", {col}" for col in raw_cols)
            + f"\nFROM {staged}",
            "raw",
        )
    ]

    # 2. per-field helper layers
    all_rules = field_rules(kind, options)
    rules = {f.name: all_rules[f.name] for f in fields}
    for i, layer in enumerate(_layers(list(rules.values()))):
        cols = ",\n  ".join(f"{sql} AS {name}" for name, sql in layer)
        steps.append(SqlStep(f"SELECT *,\n  {cols}\nFROM {steps[-1].output_table_name}", f"l{i}"))

    # 3. typed values and errors (required fields checked here)
    typed: list[str] = []
    for f in kind.fields:
        if f.name in c.live:
            rule = rules[f.name]
            error = rule.error
            if f.required:
                error = (
                    f"coalesce({error}, "
                    f"CASE WHEN {rule.value} IS NULL THEN '{f.type.value}.required' END)"
                )
            typed.append(f"{rule.value} AS v__{f.name}")
            typed.append(f"{error} AS e__{f.name}")
        elif f.name in c.required_absent:
            typed.append(f"'{f.type.value}.required' AS e__{f.name}")
    no_id = "CAST(NULL AS VARCHAR)"
    if kind.name in NEEDS_IDENTIFIER:
        live_ids = [f for f in identifier_fields(kind) if f.name in c.live]
        none = " AND ".join(f"v__{f.name} IS NULL AND e__{f.name} IS NULL" for f in live_ids)
        no_id = (
            f"CASE WHEN {none} THEN 'record.no_identifier' END"
            if none
            else "'record.no_identifier'"
        )
    typed.append(f"{no_id} AS e__record")
    steps.append(
        SqlStep(
            "SELECT _row, _ref"
            + "".join(f", r__{f.name}" for f in fields)
            + ",\n  "
            + ",\n  ".join(typed)
            + f"\nFROM {steps[-1].output_table_name}",
            "typed",
        )
    )

    # 4. record id; bad or not; raw values kept for bad rows only (they feed the rejects)
    row_hash = " || ',' || ".join(
        f"coalesce(CAST(length(r__{f.name}) AS VARCHAR) || ':' || r__{f.name}, '-')"
        if f.name in c.live
        else "'-'"
        for f in kind.fields
    )
    hashed = f"{source_id} || ':' || sha256({row_hash})"
    record_id = hashed
    if kind.key and kind.key in c.live:
        record_id = (
            f"CASE WHEN v__{kind.key} IS NOT NULL THEN {source_id} || ':' || v__{kind.key} "
            f"ELSE {hashed} END"
        )
    bad = " OR ".join(
        [f"e__{f.name} IS NOT NULL" for f in kind.fields if c.has_error(f)]
        + ["e__record IS NOT NULL"]
    )
    values = "".join(f", v__{f.name}" for f in fields)
    errors = "".join(f", e__{f.name}" for f in kind.fields if c.has_error(f))
    raws = "".join(f", CASE WHEN _bad THEN r__{f.name} END AS r__{f.name}" for f in fields)
    steps.append(
        SqlStep(
            f"SELECT *, {record_id} AS record_id, {bad} AS _bad\nFROM typed",
            "checked",
        )
    )
    steps.append(
        SqlStep(
            f"SELECT _row, _ref, record_id, _bad{values}{errors}, e__record{raws}\nFROM checked",
            "cleaned",
        )
    )
    return steps


def _dups_sql(cleaned: str) -> str:
    """Record ids accepted more than once, with the first (lowest) _row: usually few."""
    return (
        f"SELECT record_id, min(_row) AS first_row FROM {cleaned} "
        "WHERE NOT _bad GROUP BY record_id HAVING count(*) > 1"
    )


def _kept(cleaned: str) -> str:
    """The accepted rows, the first (lowest _row) of each record id."""
    return (
        f"WITH kept AS (SELECT c.* FROM {cleaned} AS c LEFT JOIN {cleaned}_dups AS d "
        "ON c.record_id = d.record_id "
        "WHERE NOT c._bad AND (d.first_row IS NULL OR c._row = d.first_row))\n"
    )


def _records_sql(c: _Cleaned, cleaned: str, source_id: str) -> str:
    kind = c.kind
    cols = ["record_id", "_row", "_ref"]
    for f in record_fields(kind):
        cols.append(f"{c.value(f)} AS {output_column(f)}")
    cols.append(f"{lit(source_id)} AS source_id")
    if "observed_at" not in {f.name for f in record_fields(kind)}:
        cols.append(f"{_observed_at(c)} AS observed_at")
    return f"{_kept(cleaned)}SELECT {', '.join(cols)}\nFROM kept"


def _observed_at(c: _Cleaned) -> str:
    if c.kind.time_field:
        return c.value(c.kind.field(c.kind.time_field))
    return "CAST(NULL AS TIMESTAMP)"


def _contacts_sql(c: _Cleaned, cleaned: str, source_id: str) -> str:
    kind = c.kind
    has_store = any(f.name == "store_code" for f in kind.fields)
    store = c.value(kind.field("store_code")) if has_store else "CAST(NULL AS VARCHAR)"
    live_person = [f for f in PERSON_FIELDS if f.name in c.live]
    anyone = " OR ".join(f"v__{f.name} IS NOT NULL" for f in live_person) or "FALSE"
    person = {f.name: c.value(f) for f in PERSON_FIELDS}
    return (
        f"{_kept(cleaned)}SELECT record_id, {lit(kind.name)} AS record_kind, "
        f"{lit(source_id)} AS source_id, {person['name']} AS name, "
        f"{person['gender']} AS gender, {person['birthday']} AS birthday, "
        f"{person['city']} AS city, {store} AS store_code, {_observed_at(c)} AS observed_at\n"
        f"FROM kept\nWHERE {anyone}"
    )


def _identifiers_sql(c: _Cleaned, cleaned: str, source_id: str) -> str:
    # Kept rows have distinct record ids, so only two fields of one identifier type (phone
    # and phone2 holding the same number) can repeat a row: DISTINCT only then.
    types = [f.id_type for f in identifier_fields(c.kind) if f.name in c.live]
    select = "SELECT DISTINCT" if len(types) != len(set(types)) else "SELECT"
    return (
        f"{_kept(cleaned)}{select} record_id, {lit(c.kind.name)} AS record_kind, "
        f"{lit(source_id)} AS source_id, id_type, id_value, observed_at\nFROM (\n"
        f"{_identifier_union(c)}\n) AS i"
    )


def _identifier_values_sql(c: _Cleaned, cleaned: str) -> str:
    """The distinct (id_type, id_value) pairs the identifiers output holds."""
    return (
        f"{_kept(cleaned)}SELECT DISTINCT id_type, id_value\nFROM (\n{_identifier_union(c)}\n) AS i"
    )


def _identifier_union(c: _Cleaned) -> str:
    """One SELECT per identifier field over `kept`: record_id, id_type, id_value, observed_at."""
    kind = c.kind
    parts = []
    for f in identifier_fields(kind):
        if f.name not in c.live:
            continue
        value = f"v__{f.name}"
        if f.name == "wechat_openid" and "wechat_appid" in c.live:
            value = (
                "CASE WHEN v__wechat_appid IS NOT NULL "
                "THEN v__wechat_appid || ':' || v__wechat_openid ELSE v__wechat_openid END"
            )
        parts.append(
            f"SELECT record_id, {lit(f.id_type or f.name)} AS id_type, {value} AS id_value, "
            f"{_observed_at(c)} AS observed_at FROM kept WHERE v__{f.name} IS NOT NULL"
        )
    if not parts:
        parts.append(
            "SELECT record_id, CAST(NULL AS VARCHAR) AS id_type, CAST(NULL AS VARCHAR) AS "
            f"id_value, {_observed_at(c)} AS observed_at FROM kept WHERE FALSE"
        )
    return "\nUNION ALL\n".join(parts)


def _rejects_sql(c: _Cleaned, cleaned: str, rules: dict[str, FieldSql]) -> str:
    parts = []
    for f in c.kind.fields:
        if not c.has_error(f):
            continue
        value = f"r__{f.name}" if f.name in c.live else "CAST(NULL AS VARCHAR)"
        reject_value = rules[f.name].reject_value
        if f.name in c.live and reject_value is not None:
            value = reject_value
        parts.append(
            f"SELECT _row, _ref, {lit(f.name)} AS field, {value} AS value, "
            f"e__{f.name} AS rule, {_reason_sql(f, value, f'e__{f.name}')} AS reason\n"
            f"FROM bad WHERE e__{f.name} IS NOT NULL"
        )
    ids = ", ".join(f.name for f in identifier_fields(c.kind))
    parts.append(
        "SELECT _row, _ref, CAST(NULL AS VARCHAR) AS field, CAST(NULL AS VARCHAR) AS value, "
        "e__record AS rule, "
        f"'the record names no one: no identifier ({ids}) has a value (' || e__record || ')' "
        "AS reason\nFROM bad WHERE e__record IS NOT NULL"
    )
    union = "\nUNION ALL\n".join(parts)
    return f"WITH bad AS (SELECT * FROM {cleaned} WHERE _bad)\n{union}"


def clean_sql(
    kind: RecordKind,
    staged: str,
    staged_columns: list[str],
    options: CleanOptions,
    out_prefix: str,
) -> list[tuple[str, str]]:
    """The (table, DuckDB-dialect SELECT) pairs `clean_records` materialises, in order.

    The first is the cleaned work table, the second its duplicates; both are dropped after
    the four outputs are written.
    """
    _validate(kind, options, out_prefix)
    c = _liveness(kind, staged_columns, options)
    cleaned = f"{out_prefix}_cleaned"
    source_id = options.source_id
    return [
        (cleaned, pipeline_sql(build_clean_steps(kind, staged, staged_columns, options))),
        (f"{cleaned}_dups", _dups_sql(cleaned)),
        (f"{out_prefix}_records", _records_sql(c, cleaned, source_id)),
        (f"{out_prefix}_contacts", _contacts_sql(c, cleaned, source_id)),
        (f"{out_prefix}_identifiers", _identifiers_sql(c, cleaned, source_id)),
        (f"{out_prefix}_rejects", _rejects_sql(c, cleaned, field_rules(kind, options))),
    ]


@dataclass(frozen=True)
class CleanWork:
    """A cleaning run whose four outputs are left as queries: the materialised work tables
    (the cleaned rows and their duplicates) and the DuckDB-dialect SELECT of each output
    over them. A caller that only reads each output once (the file import) skips four
    tables; `drop_work` removes the work tables afterwards."""

    tables: tuple[str, ...]
    records: str
    contacts: str
    identifiers: str
    rejects: str
    identifier_values: str  # the distinct (id_type, id_value) pairs of `identifiers`


def clean_work(
    engine: Engine, kind: RecordKind, staged: str, options: CleanOptions, out_prefix: str
) -> CleanWork:
    """Materialise the cleaned rows of `staged` and return the outputs' SELECTs over them."""
    staged_columns = engine.columns(staged)
    statements = clean_sql(kind, staged, staged_columns, options, out_prefix)
    engine.register_udf(PHONE_UDF)
    engine.register_udf(id_card_udf(options.hash_key))
    tables = tuple(name for name, _ in statements[:2])
    try:
        for name, sql in statements[:2]:
            engine.create_table_as(name, sql)
    except BaseException:
        drop_work(engine, tables)
        raise
    records, contacts, identifiers, rejects = (sql for _, sql in statements[2:])
    values = _identifier_values_sql(_liveness(kind, staged_columns, options), tables[0])
    return CleanWork(tables, records, contacts, identifiers, rejects, values)


def drop_work(engine: Engine, tables: tuple[str, ...]) -> None:
    for name in reversed(tables):
        engine.drop(name)


def clean_records(
    engine: Engine, kind: RecordKind, staged: str, options: CleanOptions, out_prefix: str
) -> CleanOutputs:
    """Clean the staged rows of `kind` into `{out_prefix}_records`, `_contacts`,
    `_identifiers` and `_rejects` (see the module docstring); returns their names."""
    work = clean_work(engine, kind, staged, options, out_prefix)
    outputs = CleanOutputs(
        records=f"{out_prefix}_records",
        contacts=f"{out_prefix}_contacts",
        identifiers=f"{out_prefix}_identifiers",
        rejects=f"{out_prefix}_rejects",
    )
    try:
        engine.create_table_as(outputs.records, work.records)
        engine.create_table_as(outputs.contacts, work.contacts)
        engine.create_table_as(outputs.identifiers, work.identifiers)
        engine.create_table_as(outputs.rejects, work.rejects)
    finally:
        drop_work(engine, work.tables)
    return outputs

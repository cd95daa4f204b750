"""Cleaning rules: one SQL builder per `FieldType`, portable across the engines.

Each rule takes the SQL expression of a raw VARCHAR value and its `Field` and returns a
`FieldSql`: the standardised typed value (NULL when empty or invalid) and the error (NULL
when the value is fine or empty, else a short rule name such as 'phone.invalid'). Rules may
declare helper columns computed first, so long expressions are not repeated; the cleaning
stage (clean/stage.py) stacks them in layers of one SELECT each. `FieldSql.inline()` gives
self-contained `(value_sql, error_sql)` expressions instead.

The SQL is DuckDB dialect, transpiled to Spark by the engine seam; every cast that can meet a
bad value is a TRY_CAST, so both engines give NULL (Spark runs with ANSI mode on). Python
runs only where SQL cannot do the job and only for the rare rows that need it: foreign or
landline phone numbers (phonenumbers) and the keyed hash of id-card numbers (hmac).

Example:
    >>> from mecdp.clean.kinds import Field, FieldType
    >>> rule = clean_field("raw", Field("quantity", FieldType.INTEGER), "q")
    >>> rule.value
    'q__value'
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers

from mecdp.clean.codes import CHANNEL_SYNONYMS, CHANNELS
from mecdp.clean.kinds import Field, FieldType
from mecdp.store.engine import ScalarUdf

# --- SQL text helpers ----------------------------------------------------------------------

# Full-width ASCII (U+FF01..U+FF5E) -> ASCII, ideographic space / NBSP / tab / newlines ->
# space, ideographic full stop 。-> '.' (a common typo in e-mail addresses and decimals).
FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000\u00a0\u3002"
HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + "  ."

# Values that mean "nothing here" in exports.
BLANK_LIKE = ("", "-", "--", "—", "null", "none", "n/a", "na", "nan", "undefined", "无数据")


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(values: tuple[str, ...] | list[str]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


_NEEDS_HALF_WIDTH = "[\uff01-\uff5e\u3000\u00a0\u3002]"


def half_width(x: str) -> str:
    """Full-width characters -> half-width; odd spaces -> ' '.

    `translate` is slow (it builds its map per row), so only rows with such a character
    pay for it, and pure-ASCII rows (byte length = character length) skip even the check.
    """
    return (
        f"CASE WHEN mecdp_byte_length({x}) <> length({x}) "
        f"AND regexp_matches({x}, {lit(_NEEDS_HALF_WIDTH)}) "
        f"THEN translate({x}, {lit(FULL_WIDTH)}, {lit(HALF_WIDTH)}) ELSE {x} END"
    )


def squashed(x: str) -> str:
    """Half-width, trimmed, inner runs of spaces collapsed; '' -> NULL."""
    return f"nullif(trim(regexp_replace({half_width(x)}, '\\s+', ' ', 'g')), '')"


def no_spaces_lower(x: str) -> str:
    """Half-width, lower-case, all spaces removed (for matching against vocabularies)."""
    return f"lower(replace({half_width(x)}, ' ', ''))"


def is_ascii(x: str) -> str:
    """True when `x` is pure ASCII (UTF-8 bytes = characters): cheap, no string copy."""
    return f"mecdp_byte_length({x}) = length({x})"


def is_tidy(x: str) -> str:
    """True when `x` needs no trimming, space collapsing or width folding (cheap tests)."""
    return (
        f"({x} <> '' AND NOT contains({x}, '  ') AND {x} NOT LIKE ' %' AND {x} NOT LIKE '% ' "
        f"AND NOT contains({x}, chr(9)) AND NOT contains({x}, chr(10)) "
        f"AND NOT contains({x}, chr(13)) "
        f"AND ({is_ascii(x)} OR NOT regexp_matches({x}, {lit(_NEEDS_HALF_WIDTH)})))"
    )


def case_map(x: str, mapping: dict[str, str], default: str = "NULL") -> str:
    """CASE x WHEN key THEN value ... ELSE default END."""
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in mapping.items())
    return f"CASE {x} {whens} ELSE {default} END"


# --- rule output ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSql:
    """The SQL that cleans one field.

    `helpers` are (column, sql) pairs computed in order before `value` and `error`; each may
    refer to the raw expression and to earlier helpers. `reject_value` is what a reject row
    shows as the value (the raw value unless the rule masks it).
    """

    value: str
    error: str
    helpers: tuple[tuple[str, str], ...] = ()
    reject_value: str | None = None

    def inline(self) -> tuple[str, str]:
        """Self-contained (value_sql, error_sql), helpers substituted in."""
        value, error = self.value, self.error
        for name, sql in reversed(self.helpers):
            pattern = re.compile(rf"\b{re.escape(name)}\b")
            value = pattern.sub(lambda _m, s=sql: f"({s})", value)  # type: ignore[misc]
            error = pattern.sub(lambda _m, s=sql: f"({s})", error)  # type: ignore[misc]
        return value, error


class _Names:
    """Helper column names of one field: `<prefix>__<name>`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.helpers: list[tuple[str, str]] = []
        self.fast: tuple[str, str] | None = None

    def add(self, name: str, sql: str) -> str:
        column = f"{self.prefix}__{name}"
        if self.fast is not None:
            sql = f"CASE WHEN {self.fast[0]} THEN NULL ELSE {sql} END"
        self.helpers.append((column, sql))
        return column

    def fast_path(self, condition: str, value: str) -> None:
        """Rows meeting `condition` (cheap, over the raw value) are already clean and valid:
        they take `value` and skip every later helper, so the common spelling costs a test
        instead of a chain of string copies."""
        self.fast = (self.add("fast", f"coalesce({condition}, FALSE)"), value)

    def result(self, value: str, error: str, reject_value: str | None = None) -> FieldSql:
        if self.fast is not None:
            flag, fast_value = self.fast
            value = f"CASE WHEN {flag} THEN {fast_value} ELSE {value} END"
            error = f"CASE WHEN {flag} THEN NULL ELSE {error} END"
        return FieldSql(value, error, tuple(self.helpers), reject_value)


# --- the value types per FieldType ---------------------------------------------------------

SQL_TYPES: dict[FieldType, str] = {
    FieldType.DATE: "DATE",
    FieldType.TIMESTAMP: "TIMESTAMP",
    FieldType.MONEY: "BIGINT",
    FieldType.INTEGER: "INTEGER",
    FieldType.DECIMAL: "DECIMAL(10, 2)",
    FieldType.BOOL: "BOOLEAN",
}


def sql_type(field_type: FieldType) -> str:
    return SQL_TYPES.get(field_type, "VARCHAR")


# Rule name -> what a reject's reason says about the value.
RULE_TEXTS: dict[str, str] = {
    "phone.invalid": "is not a valid phone number",
    "email.invalid": "is not a valid e-mail address",
    "gender.unknown": "is not a known gender (男/女/M/F/1/2)",
    "date.unparseable": "is not a date in a known format",
    "date.invalid": "is not a real calendar date",
    "date.out_of_range": "is outside the plausible years 1900-2100",
    "timestamp.unparseable": "is not a date/time in a known format",
    "timestamp.invalid": "is not a real calendar date/time",
    "timestamp.out_of_range": "is outside the plausible years 1900-2100",
    "money.invalid": "is not an amount of money",
    "money.negative": "is a negative amount (refunds are an order status)",
    "integer.invalid": "is not a whole number",
    "decimal.invalid": "is not a number",
    "bool.invalid": "is not a yes/no value (是/否/Y/N/1/0)",
    "channel.unknown": "is not a known channel",
    "enum.unknown": "is not one of the allowed values",
    "id_card.invalid": "is not a valid resident id-card number",
}


def _blank(x: str) -> str:
    return f"({x} IS NULL OR lower({x}) IN {in_list(BLANK_LIKE)})"


def clean_text(raw: str, _field: Field, prefix: str) -> FieldSql:
    """TEXT: half-width, trimmed, inner spaces collapsed."""
    n = _Names(prefix)
    n.fast_path(is_tidy(raw), raw)
    v = n.add("value", squashed(raw))
    return n.result(v, "CAST(NULL AS VARCHAR)")


def clean_code(raw: str, _field: Field, prefix: str) -> FieldSql:
    """CODE: TEXT, upper-cased, no spaces (store and item codes)."""
    n = _Names(prefix)
    n.fast_path(f"regexp_matches({raw}, '^[0-9A-Z_./-]+$')", raw)
    v = n.add("value", f"nullif(upper(replace({half_width(raw)}, ' ', '')), '')")
    return n.result(v, "CAST(NULL AS VARCHAR)")


def clean_name(raw: str, _field: Field, prefix: str) -> FieldSql:
    """NAME: TEXT; a name without Latin letters loses all spaces ('张 三' -> '张三'),
    a Latin name keeps single spaces ('Li  Na' -> 'Li Na')."""
    n = _Names(prefix)
    n.fast_path(f"{is_tidy(raw)} AND NOT contains({raw}, ' ')", raw)
    s = n.add("s", squashed(raw))
    v = n.add(
        "value",
        f"CASE WHEN regexp_matches({s}, '[A-Za-z]') THEN {s} "
        f"ELSE nullif(replace({s}, ' ', ''), '') END",
    )
    return n.result(v, "CAST(NULL AS VARCHAR)")


def clean_identifier(raw: str, _field: Field, prefix: str) -> FieldSql:
    """IDENTIFIER: half-width, all whitespace removed, case kept; blank-like values
    ('null', 'none', '-', 'N/A', '0') -> NULL."""
    n = _Names(prefix)
    n.fast_path(
        f"length({raw}) > 9 AND {is_ascii(raw)} AND NOT contains({raw}, ' ') "
        f"AND NOT regexp_matches({raw}, '\\s')",
        raw,
    )
    s = n.add("s", f"replace({half_width(raw)}, ' ', '')")
    v = n.add("value", f"CASE WHEN {_blank(s)} OR {s} = '0' THEN NULL ELSE {s} END")
    return n.result(v, "CAST(NULL AS VARCHAR)")


# Phone: the national-number pattern of Chinese mobiles, taken from phonenumbers' own
# metadata so the SQL fast path accepts exactly what phonenumbers accepts.
def _cn_mobile_pattern() -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    pattern = metadata.mobile.national_number_pattern if metadata and metadata.mobile else None
    if not pattern:  # pragma: no cover - phonenumbers always ships CN
        raise RuntimeError("phonenumbers has no metadata for CN mobiles")
    return str(pattern)


CN_MOBILE_PATTERN = _cn_mobile_pattern()
PHONE_UDF_NAME = "mecdp_phone_e164"


def phone_to_e164(value: str) -> str | None:
    """E.164 of a phone number (+86 when no country code), None when invalid."""
    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164


PHONE_UDF = ScalarUdf(PHONE_UDF_NAME, phone_to_e164, "VARCHAR")


def clean_phone(raw: str, _field: Field, prefix: str) -> FieldSql:
    """PHONE: E.164, +86 by default.

    Fast path in SQL for Chinese mobiles in every usual spelling ('138 1234 5678',
    '+86-138…', '0086138…', '86138…', full-width digits). Other digit strings (landlines,
    foreign numbers, odd lengths) go to phonenumbers through a UDF; those are few. Letters
    (vanity numbers, 'ext.') are rejected.
    """
    n = _Names(prefix)
    n.fast_path(
        f"regexp_matches({raw}, {lit('^(?:' + CN_MOBILE_PATTERN + ')$')})", f"'+86' || {raw}"
    )
    d = n.add("d", f"regexp_replace({half_width(raw)}, '[ ()./-]', '', 'g')")
    m = n.add("m", f"regexp_extract({d}, '^(?:\\+86|0086|86)?(1[0-9]{{10}})$', 1)")
    fast = f"regexp_matches({m}, {lit('^(?:' + CN_MOBILE_PATTERN + ')$')})"
    slow = f"regexp_matches({d}, '^\\+?[0-9]{{3,20}}$')"
    v = n.add(
        "value",
        f"CASE WHEN {d} IS NULL OR {d} = '' THEN NULL WHEN {fast} THEN '+86' || {m} "
        f"WHEN {slow} THEN {PHONE_UDF_NAME}(CASE WHEN {slow} THEN {d} END) END",
    )
    err = f"CASE WHEN {v} IS NULL AND {d} <> '' THEN 'phone.invalid' END"
    return n.result(v, err)


EMAIL_PATTERN = r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"


def clean_email(raw: str, _field: Field, prefix: str) -> FieldSql:
    """EMAIL: trimmed, lower-case, half-width ('＠' -> '@', '。' -> '.'), commas typed for
    dots ('@qq,com') fixed; then one '@', a dotted domain, no spaces."""
    n = _Names(prefix)
    s = n.add("s", f"nullif(replace(lower(trim({half_width(raw)})), ',', '.'), '')")
    v = n.add("value", f"CASE WHEN regexp_matches({s}, {lit(EMAIL_PATTERN)}) THEN {s} END")
    err = f"CASE WHEN {s} IS NOT NULL AND {v} IS NULL THEN 'email.invalid' END"
    return n.result(v, err)


GENDER_MALE = ("男", "男性", "男士", "先生", "m", "male", "man", "1")
GENDER_FEMALE = ("女", "女性", "女士", "小姐", "f", "female", "woman", "2")
GENDER_UNKNOWN = ("未知", "unknown", "空", "保密", "未说明", "u", "0", "9", *BLANK_LIKE)


def clean_gender(raw: str, _field: Field, prefix: str) -> FieldSql:
    """GENDER: 'M' or 'F'.

    Codes follow GB/T 2261.1 (and WeChat's user info): 1 = male (男), 2 = female (女),
    0 = unknown (未知), 9 = unstated (未说明). So '0' is *not* female: it gives NULL, as do
    未知/unknown/空/保密. Anything else is 'gender.unknown'.
    """
    n = _Names(prefix)
    n.fast_path(
        f"{raw} IN {in_list(GENDER_MALE + GENDER_FEMALE)}",
        f"CASE WHEN {raw} IN {in_list(GENDER_MALE)} THEN 'M' ELSE 'F' END",
    )
    g = n.add("g", no_spaces_lower(raw))
    v = n.add(
        "value",
        f"CASE WHEN {g} IN {in_list(GENDER_MALE)} THEN 'M' "
        f"WHEN {g} IN {in_list(GENDER_FEMALE)} THEN 'F' END",
    )
    err = (
        f"CASE WHEN {g} IS NULL OR {v} IS NOT NULL OR {g} IN {in_list(GENDER_UNKNOWN)} "
        "THEN NULL ELSE 'gender.unknown' END"
    )
    return n.result(v, err)


# Dates. The strict canonical form takes the fast path (one regex and a cast).
_DATE_FAST = r"^\d{4}-\d{2}-\d{2}( ([01]\d|2[0-3]):[0-5]\d:[0-5]\d)?$"
_DATE_ONLY_FAST = r"^\d{4}[-/](0?[1-9]|1[0-2])[-/](0?[1-9]|[12]\d|3[01])$"
_TIMESTAMP_FAST = (
    r"^\d{4}[-/](0?[1-9]|1[0-2])[-/](0?[1-9]|[12]\d|3[01])"
    r"( ([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?)?$"
)
# y m d [h mi [s [frac]]] [zone]: 2024/3/5, 2024.3.5, 2024年3月5日 14时30分, ISO 8601 with T.
_DATE_SEPARATED = (
    r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:(?:T| *)([01]?\d|2[0-3])[:时点]([0-5]?\d)(?:[:分]([0-5]?\d)(?:\.(\d{1,6}))?)?秒?)?"
    r" *(Z|[+-]\d{2}:?\d{2})?$"
)
# 20240305, 202403051430, 20240305143000
_DATE_COMPACT = r"^(\d{4})(\d{2})(\d{2})(?:T? *(\d{2})(\d{2})(\d{2})?)?$"
_EXCEL_SERIAL = r"^\d{5}(\.\d{1,9})?$"  # days since 1899-12-30: 45356 = 2024-03-05
_LOCAL_OFFSET_MINUTES = 480  # Asia/Shanghai, UTC+8, no daylight saving


def _canonical_from_groups(s: str, pattern: str) -> str:
    """'YYYY-MM-DD HH:MM:SS[.ffffff]' from the y/m/d/h/mi/s[/frac] groups of `pattern`."""

    def g(i: int) -> str:
        return f"regexp_extract({s}, {lit(pattern)}, {i})"

    def two(i: int) -> str:
        return f"lpad({g(i)}, 2, '0')"

    frac = (
        f" || CASE WHEN {g(7)} <> '' THEN '.' || {g(7)} ELSE '' END"
        if pattern == _DATE_SEPARATED
        else ""
    )
    return (
        f"{g(1)} || '-' || {two(2)} || '-' || {two(3)} || ' ' || {two(4)} || ':' || {two(5)}"
        f" || ':' || {two(6)}{frac}"
    )


def _micros(x: str, factor: int) -> str:
    return f"CAST({x} AS BIGINT) * {factor}"


def _clean_datetime(raw: str, _field: Field, prefix: str, *, with_time: bool) -> FieldSql:
    kind_name = "timestamp" if with_time else "date"
    n = _Names(prefix)
    # Fast path: '2024-03-05 14:30:00', '2024/3/5 14:30', '2024-3-5' (the usual exports):
    # '/' -> '-' and one cast; anything else (or an impossible date) takes the full path.
    plausible = f"{raw} >= '1900' AND {raw} < '2101'"
    dashed = f"replace({raw}, '/', '-')"
    if with_time:
        cast = f"TRY_CAST({dashed} AS TIMESTAMP)"
        n.fast_path(
            f"regexp_matches({raw}, {lit(_TIMESTAMP_FAST)}) AND {plausible} AND {cast} IS NOT NULL",
            f"mecdp_add_micros({cast}, -{_LOCAL_OFFSET_MINUTES * 60_000_000})",
        )
    else:
        cast = f"TRY_CAST({dashed} AS DATE)"
        n.fast_path(
            f"regexp_matches({raw}, {lit(_DATE_ONLY_FAST)}) AND {plausible} AND {cast} IS NOT NULL",
            cast,
        )
    s = n.add("s", f"nullif(upper(trim({half_width(raw)})), '')")
    shape = n.add(
        "shape",
        f"CASE WHEN {_blank(s)} THEN NULL "
        f"WHEN regexp_matches({s}, {lit(_DATE_FAST)}) THEN 'fast' "
        f"WHEN regexp_matches({s}, {lit(_DATE_SEPARATED)}) THEN 'separated' "
        f"WHEN regexp_matches({s}, {lit(_DATE_COMPACT)}) THEN 'compact' "
        f"WHEN regexp_matches({s}, {lit(_EXCEL_SERIAL)}) THEN 'excel' "
        f"WHEN regexp_matches({s}, '^[0-9]{{9,10}}$') THEN 'epoch_s' "
        f"WHEN regexp_matches({s}, '^[0-9]{{13}}$') THEN 'epoch_ms' "
        "ELSE 'unparseable' END",
    )
    excel_seconds = f"round(TRY_CAST({s} AS DECIMAL(38, 9)) * 86400, 0)"
    local_epoch = f"TIMESTAMP '1970-01-01 {_LOCAL_OFFSET_MINUTES // 60:02d}:00:00'"
    # The local (Asia/Shanghai or the written offset) wall-clock time.
    local = n.add(
        "local",
        f"CASE {shape} "
        f"WHEN 'fast' THEN TRY_CAST(CASE WHEN length({s}) = 10 THEN {s} || ' 00:00:00' "
        f"ELSE {s} END AS TIMESTAMP) "
        f"WHEN 'separated' THEN TRY_CAST({_canonical_from_groups(s, _DATE_SEPARATED)} "
        "AS TIMESTAMP) "
        f"WHEN 'compact' THEN TRY_CAST({_canonical_from_groups(s, _DATE_COMPACT)} "
        "AS TIMESTAMP) "
        f"WHEN 'excel' THEN mecdp_add_micros(TIMESTAMP '1899-12-30 00:00:00', "
        f"{_micros(excel_seconds, 1_000_000)}) "
        f"WHEN 'epoch_s' THEN mecdp_add_micros({local_epoch}, {_micros(s, 1_000_000)}) "
        f"WHEN 'epoch_ms' THEN mecdp_add_micros({local_epoch}, {_micros(s, 1_000)}) END",
    )
    in_range = f"year({local}) BETWEEN 1900 AND 2100"
    if with_time:
        zone = f"regexp_extract({s}, {lit(_DATE_SEPARATED)}, 8)"
        offset = n.add(
            "offset",
            f"CASE WHEN {shape} <> 'separated' OR {zone} = '' THEN {_LOCAL_OFFSET_MINUTES} "
            f"WHEN {zone} = 'Z' THEN 0 "
            f"ELSE (CASE WHEN left({zone}, 1) = '-' THEN -1 ELSE 1 END) * "
            f"(TRY_CAST(substr({zone}, 2, 2) AS INTEGER) * 60 "
            f"+ TRY_CAST(right({zone}, 2) AS INTEGER)) END",
        )
        value_sql = (
            f"CASE WHEN {in_range} THEN mecdp_add_micros({local}, "
            f"-CAST({offset} AS BIGINT) * 60000000) END"
        )
    else:
        value_sql = f"CASE WHEN {in_range} THEN CAST({local} AS DATE) END"
    v = n.add("value", value_sql)
    err = (
        f"CASE WHEN {shape} IS NULL THEN NULL "
        f"WHEN {shape} = 'unparseable' THEN '{kind_name}.unparseable' "
        f"WHEN {local} IS NULL THEN '{kind_name}.invalid' "
        f"WHEN {v} IS NULL THEN '{kind_name}.out_of_range' END"
    )
    return n.result(v, err)


def clean_date(raw: str, _field: Field, prefix: str) -> FieldSql:
    """DATE (e.g. birthday): 2024/3/5, 2024-03-05, 2024.3.5, 2024年3月5日, 20240305, Excel
    serial days, epoch seconds (9-10 digits) or milliseconds (13). No time-zone shift for
    written dates; an epoch value is read as a Beijing-time instant (how apps store a local
    midnight)."""
    return _clean_datetime(raw, _field, prefix, with_time=False)


def clean_timestamp(raw: str, _field: Field, prefix: str) -> FieldSql:
    """TIMESTAMP: the DATE forms plus 'HH:MM[:SS]', ISO 8601 with 'T' and 'Z'/'+08:00'.
    Naive times are Asia/Shanghai (UTC+8, no DST) and stored in UTC; written offsets are
    honoured; epoch values are UTC already."""
    return _clean_datetime(raw, _field, prefix, with_time=True)


_MONEY_FAST = r"^[¥￥]?([0-9]{1,12}|[0-9]{1,3}(,[0-9]{3}){1,3})(\.[0-9]{1,2})?元?$"
_MONEY_NUMBER = r"^[+-]?([0-9]{1,14}(\.[0-9]{0,4})?|\.[0-9]{1,4})$"


def clean_money(raw: str, _field: Field, prefix: str, unit: str = "yuan") -> FieldSql:
    """MONEY -> BIGINT fen via DECIMAL (never float): '¥1,280.00', '￥1280', '1280元',
    'RMB 1,280', '1.28万', '1.28w'; '-' and '' are NULL. With unit 'fen' the number already
    is fen. Negative amounts are 'money.negative' (a refund is an order status)."""
    n = _Names(prefix)
    per_unit = 1 if unit == "fen" else 100
    # Fast path: '1280', '1280.5', '¥1,280.00', '1280元' (thousands grouped by 3 only).
    plain = f"regexp_replace({raw}, '[¥￥,元]', '', 'g')"
    n.fast_path(
        f"regexp_matches({raw}, {lit(_MONEY_FAST)})",
        f"TRY_CAST(round(TRY_CAST(CASE WHEN regexp_matches({raw}, '[¥￥,元]') THEN {plain} "
        f"ELSE {raw} END AS DECIMAL(18, 4)) * {per_unit}, 0) AS BIGINT)",
    )
    s = n.add(
        "s",
        f"regexp_replace(upper({half_width(raw)}), '[ ,¥￥$]|RMB|CNY|人民币|元', '', 'g')",
    )
    scale = f"CASE WHEN regexp_matches({s}, '(万|W)$') THEN 10000 ELSE 1 END"
    number = f"regexp_replace({s}, '(万|W)$', '')"
    amount = f"TRY_CAST({number} AS DECIMAL(18, 4)) * {scale} * {per_unit}"
    fen = n.add(
        "fen",
        f"CASE WHEN regexp_matches({number}, {lit(_MONEY_NUMBER)}) "
        f"THEN TRY_CAST(round({amount}, 0) AS BIGINT) END",
    )
    v = n.add("value", f"CASE WHEN {fen} >= 0 THEN {fen} END")
    err = (
        f"CASE WHEN {_blank(s)} THEN NULL WHEN {fen} IS NULL THEN 'money.invalid' "
        f"WHEN {fen} < 0 THEN 'money.negative' END"
    )
    return n.result(v, err)


def clean_integer(raw: str, _field: Field, prefix: str) -> FieldSql:
    """INTEGER: half-width digits, thousands separators removed; '3.0' is 3."""
    n = _Names(prefix)
    n.fast_path(f"regexp_matches({raw}, '^[0-9]{{1,9}}$')", f"CAST({raw} AS INTEGER)")
    s = n.add("s", f"regexp_replace({half_width(raw)}, '[ ,]', '', 'g')")
    v = n.add(
        "value",
        f"CASE WHEN regexp_matches({s}, '^[+-]?[0-9]{{1,10}}(\\.0*)?$') "
        f"THEN TRY_CAST(regexp_replace({s}, '\\.0*$', '') AS INTEGER) END",
    )
    err = f"CASE WHEN NOT {_blank(s)} AND {v} IS NULL THEN 'integer.invalid' END"
    return n.result(v, err)


def clean_decimal(raw: str, _field: Field, prefix: str) -> FieldSql:
    """DECIMAL: half-width digits, thousands separators removed -> DECIMAL(10, 2)."""
    n = _Names(prefix)
    n.fast_path(
        f"regexp_matches({raw}, '^[0-9]{{1,8}}(\\.[0-9]{{1,2}})?$')",
        f"CAST({raw} AS DECIMAL(10, 2))",
    )
    s = n.add("s", f"regexp_replace({half_width(raw)}, '[ ,]', '', 'g')")
    v = n.add(
        "value",
        f"CASE WHEN regexp_matches({s}, '^[+-]?([0-9]{{1,8}}(\\.[0-9]{{0,6}})?|\\.[0-9]{{1,6}})$') "
        f"THEN TRY_CAST(round(TRY_CAST({s} AS DECIMAL(18, 6)), 2) AS DECIMAL(10, 2)) END",
    )
    err = f"CASE WHEN NOT {_blank(s)} AND {v} IS NULL THEN 'decimal.invalid' END"
    return n.result(v, err)


BOOL_TRUE = ("是", "y", "yes", "true", "t", "1", "有", "促销", "√", "对")
BOOL_FALSE = ("否", "n", "no", "false", "f", "0", "无", "非促销", "不是", "没有", "×")


def clean_bool(raw: str, _field: Field, prefix: str) -> FieldSql:
    """BOOL: 是/否/Y/N/yes/no/true/false/1/0/有/无/促销 -> BOOLEAN."""
    n = _Names(prefix)
    n.fast_path(f"{raw} IN {in_list(BOOL_TRUE + BOOL_FALSE)}", f"{raw} IN {in_list(BOOL_TRUE)}")
    b = n.add("b", no_spaces_lower(raw))
    v = n.add(
        "value",
        f"CASE WHEN {b} IN {in_list(BOOL_TRUE)} THEN TRUE "
        f"WHEN {b} IN {in_list(BOOL_FALSE)} THEN FALSE END",
    )
    err = f"CASE WHEN NOT {_blank(b)} AND {v} IS NULL THEN 'bool.invalid' END"
    return n.result(v, err)


def channel_vocabulary() -> dict[str, str]:
    """Spelling (lower-case, no spaces) -> channel code: codes themselves and synonyms."""
    vocabulary = {code: code for code in CHANNELS}
    vocabulary.update(CHANNEL_SYNONYMS)
    return vocabulary


def clean_channel(raw: str, _field: Field, prefix: str) -> FieldSql:
    """CHANNEL: lower-cased, spaces removed, mapped through CHANNEL_SYNONYMS or a code."""
    n = _Names(prefix)
    vocabulary = channel_vocabulary()
    n.fast_path(f"{raw} IN {in_list(list(vocabulary))}", case_map(raw, vocabulary))
    c = n.add("c", no_spaces_lower(raw))
    v = n.add("value", case_map(c, vocabulary))
    err = f"CASE WHEN NOT {_blank(c)} AND {v} IS NULL THEN 'channel.unknown' END"
    return n.result(v, err)


def clean_enum(raw: str, field: Field, prefix: str) -> FieldSql:
    """ENUM: `Field.choices` spellings (lower-cased, no spaces) -> canonical value. A choice
    listing '' as a spelling is also the value of an empty field."""
    n = _Names(prefix)
    vocabulary: dict[str, str] = {}
    for canonical, spellings in field.choices:
        for spelling in (canonical, *spellings):
            vocabulary.setdefault(spelling.lower().replace(" ", ""), canonical)
    exact = {k: v for k, v in vocabulary.items() if k}
    n.fast_path(f"{raw} IN {in_list(list(exact))}", case_map(raw, exact))
    e = n.add("e", f"coalesce({no_spaces_lower(raw)}, '')")
    v = n.add("value", case_map(e, vocabulary))
    err = f"CASE WHEN NOT {_blank(e)} AND {v} IS NULL THEN 'enum.unknown' END"
    return n.result(v, err)


ID_CARD_UDF_NAME = "mecdp_id_card_hash"
_ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CARD_CHECK = "10X98765432"


def id_card_hasher(key: bytes) -> Callable[[str], str]:
    """The keyed hash of an id-card number: lower-hex HMAC-SHA256(key, upper-cased number)."""

    def hash_id_card(number: str) -> str:
        return hmac.new(key, number.upper().encode(), hashlib.sha256).hexdigest()

    return hash_id_card


@functools.lru_cache(maxsize=8)
def id_card_udf(key: bytes) -> ScalarUdf:
    """The id-card hash UDF for `key` (the same object per key, so engines register once)."""
    return ScalarUdf(ID_CARD_UDF_NAME, id_card_hasher(key), "VARCHAR")


def mask_sql(x: str) -> str:
    """Keep the first and last 4 characters: '1101**********123X'."""
    return (
        f"CASE WHEN length({x}) > 8 THEN left({x}, 4) || repeat('*', length({x}) - 8) "
        f"|| right({x}, 4) ELSE repeat('*', length({x})) END"
    )


def clean_id_card(raw: str, _field: Field, prefix: str) -> FieldSql:
    """ID_CARD (居民身份证号): 17 digits + digit or X, GB 11643 check digit (ISO 7064
    MOD 11-2), a real birth date inside; stored only as a keyed hash (see
    `id_card_hasher`). Reject rows show the number masked."""
    n = _Names(prefix)
    v0 = n.add("s", f"upper(replace({half_width(raw)}, ' ', ''))")
    total = " + ".join(
        f"TRY_CAST(substr({v0}, {i + 1}, 1) AS INTEGER) * {w}"
        for i, w in enumerate(_ID_CARD_WEIGHTS)
    )
    birth = (
        f"TRY_CAST(substr({v0}, 7, 4) || '-' || substr({v0}, 11, 2) || '-' "
        f"|| substr({v0}, 13, 2) AS DATE)"
    )
    ok = n.add(
        "ok",
        f"regexp_matches({v0}, '^[0-9]{{17}}[0-9X]$') "
        f"AND substr({lit(_ID_CARD_CHECK)}, ({total}) % 11 + 1, 1) = substr({v0}, 18, 1) "
        f"AND year({birth}) BETWEEN 1900 AND 2100",
    )
    v = n.add("value", f"CASE WHEN {ok} THEN {ID_CARD_UDF_NAME}({v0}) END")
    err = f"CASE WHEN NOT {_blank(v0)} AND NOT coalesce({ok}, FALSE) THEN 'id_card.invalid' END"
    return n.result(v, err, reject_value=mask_sql(raw))


RuleBuilder = Callable[[str, Field, str], FieldSql]

RULES: dict[FieldType, RuleBuilder] = {
    FieldType.TEXT: clean_text,
    FieldType.CODE: clean_code,
    FieldType.NAME: clean_name,
    FieldType.PHONE: clean_phone,
    FieldType.EMAIL: clean_email,
    FieldType.GENDER: clean_gender,
    FieldType.DATE: clean_date,
    FieldType.TIMESTAMP: clean_timestamp,
    FieldType.MONEY: clean_money,
    FieldType.INTEGER: clean_integer,
    FieldType.DECIMAL: clean_decimal,
    FieldType.BOOL: clean_bool,
    FieldType.CHANNEL: clean_channel,
    FieldType.ENUM: clean_enum,
    FieldType.IDENTIFIER: clean_identifier,
    FieldType.ID_CARD: clean_id_card,
}


def clean_field(raw: str, field: Field, prefix: str, *, money_unit: str = "yuan") -> FieldSql:
    """The rule of `field.type` applied to the raw VARCHAR expression `raw`.

    Helper columns are named `<prefix>__<name>`; `money_unit` ('yuan' or 'fen') applies to
    MONEY fields without a unit of their own (`Field.unit`).
    """
    if field.type is FieldType.MONEY:
        return clean_money(raw, field, prefix, unit=field.unit or money_unit)
    return RULES[field.type](raw, field, prefix)

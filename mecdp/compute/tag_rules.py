"""Tag definitions as data (标签体系): the pydantic models a tag YAML file or the API gives.

A definition names the tag (zh + en), who owns it, how often it refreshes, its value type
(boolean, enum, number) and a rule. A rule is one of (field ``kind``):

* ``trait``: conditions on the member's golden-record basics (``cm_members`` columns), with
  two helpers: ``days_since`` (whole days from a date/time column to ``as_of``) and
  ``birthday_month_is_current`` (生日当月).
* ``aggregate``: a measure over one fact (orders, appointments, treatments, interactions,
  events, course_cards) with optional ``where`` conditions and a window of days before
  ``as_of``; compared (boolean tag) or taken as the value (number tag).
* ``share``: the share of a fact's rows or spend matching ``where`` (促销驱动型, 奢侈品偏好者).
* ``preference``: the member's top value of a column (e.g. category) by count or spend.
* ``all`` / ``any`` / ``not``: combinators over boolean rules.
* ``sql``: one read-only SELECT over the documented inputs (experts; DuckDB only).

Every column a rule names is checked against `FACT_COLUMNS`, and every literal against the
column's type, so a bad definition fails when it is loaded with the field and the reason.

Example:
    >>> d = TagDefinition.model_validate({
    ...     "tag_id": "frequent_visitor", "name_zh": "高频到店用户", "name_en": "Frequent visitor",
    ...     "category": "lifecycle",
    ...     "rule": {"kind": "aggregate", "fact": "appointments", "window_days": 90,
    ...              "where": [{"column": "status", "op": "eq", "value": "arrived"}],
    ...              "measure": "count", "op": "gte", "value": 4}})
    >>> d.rule.kind, d.value_type
    ('aggregate', 'boolean')
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from mecdp.compute.tag_columns import FACT_COLUMNS, ColumnType, Fact, literal_of
from mecdp.compute.tag_sandbox import check_expert_sql

Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null", "not_null", "between"]
NUMERIC_OPS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "between"})
Comparison = Literal["eq", "ne", "gt", "gte", "lt", "lte", "between"]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | datetime | date
SIMPLE_MEASURES = ("count", "days_since_last", "days_since_first")
COLUMN_MEASURES = ("count_distinct", "sum", "avg", "max", "min")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- conditions -----------------------------------------------------------------------------


class Condition(_Model):
    """``column op value``. ``ne``/``not_in`` hold for a NULL column; other ops do not.
    ``in``/``not_in`` take a list, ``between`` a [low, high] list (both ends included)."""

    column: str
    op: Op = "eq"
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        _check_value_shape(self.op, self.value)
        return self

    def check(self, fact: str, path: str) -> None:
        """Raise ValueError naming `path` when the column or value does not fit `fact`."""
        column_type = column_type_of(fact, self.column, f"{path}.column")
        _check_literals(self.op, self.value, column_type, path)


class AnyOf(_Model):
    """Holds when any of its conditions holds (a ``where`` list is otherwise all-of)."""

    any: list[Condition] = Field(min_length=1)

    def check(self, fact: str, path: str) -> None:
        for i, condition in enumerate(self.any):
            condition.check(fact, f"{path}.any[{i}]")


def _where_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "any" if "any" in value else "condition"
    return "any" if isinstance(value, AnyOf) else "condition"


WhereItem = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated[AnyOf, Tag("any")],
    Discriminator(_where_kind),
]


class TraitCondition(_Model):
    """A condition on a ``cm_members`` column, or a helper:

    * ``helper: days_since``: whole days from the column (a date/time) to ``as_of``,
      compared with ``op``/``value`` (NULL, never true, when the column is empty or later
      than ``as_of``);
    * ``helper: birthday_month_is_current``: 生日当月, the birthday's month is ``as_of``'s.
    """

    column: str | None = None
    helper: Literal["days_since", "birthday_month_is_current"] | None = None
    op: Op | None = None
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _fits(self) -> TraitCondition:
        if self.helper == "birthday_month_is_current":
            if (
                self.column not in (None, "birthday")
                or self.op is not None
                or self.value is not None
            ):
                raise ValueError("birthday_month_is_current takes no column, op or value")
            return self
        if self.column is None:
            raise ValueError("column is required")
        column_type = column_type_of("members", self.column, "column")
        op = self.op or "eq"
        _check_value_shape(op, self.value)
        if self.helper == "days_since":
            if column_type not in ("date", "timestamp"):
                raise ValueError(f"days_since needs a date or time column, not {self.column!r}")
            if op not in NUMERIC_OPS | {"is_null", "not_null"}:
                raise ValueError(f"op {op!r} does not compare a number of days")
            column_type = "number"
        _check_literals(op, self.value, column_type, "value")
        return self


def column_type_of(fact: str, column: str, path: str) -> ColumnType:
    columns = FACT_COLUMNS[fact]
    if column not in columns:
        raise ValueError(
            f"{path}: unknown column {column!r} of {fact}; one of: {', '.join(columns)}"
        )
    return columns[column]


def _check_value_shape(op: str, value: Any) -> None:
    if op in ("is_null", "not_null"):
        if value is not None:
            raise ValueError(f"op {op} takes no value")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"op {op} needs a non-empty list as value")
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("op between needs a [low, high] list as value")
    elif value is None or isinstance(value, list):
        raise ValueError(f"op {op} needs one value")


def _check_literals(op: str, value: Any, column_type: ColumnType, path: str) -> None:
    for item in value if isinstance(value, list) else [value] if value is not None else []:
        try:
            literal_of(item, column_type)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc} ({column_type} column, op {op})") from None


def _check_where(where: list[AnyOf | Condition], fact: str, path: str = "where") -> None:
    for i, item in enumerate(where):
        item.check(fact, f"{path}[{i}]")


def _check_comparison(op: str | None, value: Any) -> None:
    if op is None:
        if value is not None:
            raise ValueError("value needs an op")
        return
    _check_value_shape(op, value)
    _check_literals(op, value, "number", "value")


# --- rules ----------------------------------------------------------------------------------


class TraitRule(_Model):
    """All conditions hold on the member's basics (``cm_members``)."""

    kind: Literal["trait"]
    conditions: list[TraitCondition] = Field(min_length=1)


class AggregateRule(_Model):
    """A measure over one fact's rows (matching ``where``, inside ``window_days``).

    ``measure``: count | count_distinct:<column> | sum:<column> | avg:<column> |
    max:<column> | min:<column> | days_since_last | days_since_first. With ``op``/``value``
    it is a boolean test, without it the tag's number. A member without matching rows has
    count/count_distinct/sum 0, and no avg/max/min/days_since_* (the test is false).
    """

    kind: Literal["aggregate"]
    fact: Fact
    where: list[WhereItem] = Field(default_factory=list)
    window_days: int | None = Field(default=None, ge=1)
    measure: str = "count"
    op: Comparison | None = None
    value: StrictInt | StrictFloat | list[StrictInt | StrictFloat] | None = None

    @model_validator(mode="after")
    def _fits_fact(self) -> AggregateRule:
        _check_where(self.where, self.fact)
        name, _, column = self.measure.partition(":")
        if name in SIMPLE_MEASURES and not column:
            pass
        elif name in COLUMN_MEASURES and column:
            column_type = column_type_of(self.fact, column, "measure")
            if name != "count_distinct" and column_type != "number":
                raise ValueError(f"measure {self.measure!r} needs a number column")
        else:
            raise ValueError(
                f"measure {self.measure!r} is not one of: {', '.join(SIMPLE_MEASURES)}, "
                + ", ".join(f"{m}:<column>" for m in COLUMN_MEASURES)
            )
        _check_comparison(self.op, self.value)
        return self


class ShareRule(_Model):
    """The share of the fact's rows (``of: count``) or spend (``of: spend``, orders only)
    inside the window that match ``where``; undecided (false) below ``min_count`` rows."""

    kind: Literal["share"]
    fact: Fact = "orders"
    of: Literal["count", "spend"] = "count"
    where: list[WhereItem] = Field(min_length=1)
    window_days: int | None = Field(default=None, ge=1)
    min_count: int = Field(default=3, ge=1)
    op: Comparison | None = None
    value: StrictInt | StrictFloat | list[StrictInt | StrictFloat] | None = None

    @model_validator(mode="after")
    def _fits_fact(self) -> ShareRule:
        _check_where(self.where, self.fact)
        if self.of == "spend" and self.fact != "orders":
            raise ValueError("of: spend needs fact: orders (the only fact with money)")
        _check_comparison(self.op, self.value)
        return self


class PreferenceSource(_Model):
    """One fact whose ``column`` values count toward the preference."""

    fact: Fact
    column: str
    where: list[WhereItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fits_fact(self) -> PreferenceSource:
        column_type_of(self.fact, self.column, "column")
        _check_where(self.where, self.fact)
        return self


class PreferenceRule(_Model):
    """The member's top value of a column over the sources, by row count or spend.

    It counts only when the member has at least ``min_count`` rows with a value, the top
    value has at least ``min_share`` of the total, and no other value ties with it. Enum
    tags take the top value; ``equals`` makes it boolean ("top category is 注射").
    """

    kind: Literal["preference"]
    sources: list[PreferenceSource] = Field(min_length=1)
    by: Literal["count", "spend"] = "count"
    window_days: int | None = Field(default=None, ge=1)
    min_share: float = Field(default=0.0, ge=0.0, le=1.0)
    min_count: int = Field(default=1, ge=1)
    equals: StrictStr | None = None

    @model_validator(mode="after")
    def _spend_from_orders(self) -> PreferenceRule:
        if self.by == "spend" and any(s.fact != "orders" for s in self.sources):
            raise ValueError("by: spend needs every source to be fact: orders")
        return self


class _Combinator(_Model):
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _boolean_children(self) -> Self:
        _check_boolean_children(self.rules, "rules")
        return self


class AllRule(_Combinator):
    """Every rule holds."""

    kind: Literal["all"]


class AnyRule(_Combinator):
    """At least one rule holds."""

    kind: Literal["any"]


class NotRule(_Model):
    """The rule does not hold (a rule without data does not hold, so `not` of it does)."""

    kind: Literal["not"]
    rule: Rule

    @model_validator(mode="after")
    def _boolean_child(self) -> NotRule:
        _check_boolean_children([self.rule], "rule")
        return self


class SqlRule(_Model):
    """One SELECT over the documented inputs returning ``one_id`` [, ``value``] (experts).

    Checked by `mecdp.compute.tag_sandbox` when loaded; run by ``run_expert_tag`` on DuckDB
    with a time limit (``timeout_s``, else the caller's default).
    """

    kind: Literal["sql"]
    sql: str = Field(min_length=1)
    timeout_s: float | None = Field(default=None, gt=0, le=600)

    @model_validator(mode="after")
    def _sandboxed(self) -> SqlRule:
        check_expert_sql(self.sql)
        return self


Rule = Annotated[
    TraitRule | AggregateRule | ShareRule | PreferenceRule | AllRule | AnyRule | NotRule | SqlRule,
    Field(discriminator="kind"),
]
for _model in (_Combinator, AllRule, AnyRule, NotRule):
    _model.model_rebuild()

RuleModel = (
    TraitRule | AggregateRule | ShareRule | PreferenceRule | AllRule | AnyRule | NotRule | SqlRule
)


def value_types_of(rule: RuleModel) -> frozenset[str]:
    """The value types a rule can give: a comparison makes a boolean, a bare measure a
    number, a preference without ``equals`` an enum; SQL any of them."""
    if isinstance(rule, AggregateRule | ShareRule):
        return frozenset({"boolean" if rule.op else "number"})
    if isinstance(rule, PreferenceRule):
        return frozenset({"boolean" if rule.equals is not None else "enum"})
    if isinstance(rule, SqlRule):
        return frozenset({"boolean", "enum", "number"})
    return frozenset({"boolean"})


def _check_boolean_children(rules: list[RuleModel], path: str) -> None:
    for i, child in enumerate(rules):
        where = f"{path}[{i}]" if path == "rules" else path
        if isinstance(child, SqlRule):
            raise ValueError(f"{where}: a sql rule cannot be combined; write it as one query")
        if "boolean" not in value_types_of(child):
            hint = "equals" if isinstance(child, PreferenceRule) else "op/value"
            raise ValueError(f"{where}: a {child.kind} rule here needs {hint} to be true/false")


# --- the definition -------------------------------------------------------------------------


class TagDefinition(_Model):
    """One tag: names, ownership, value type, refresh and the rule."""

    tag_id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    description: str = ""
    owner: str | None = None
    category: str = Field(min_length=1)
    value_type: Literal["boolean", "enum", "number"] = "boolean"
    refresh: Literal["event", "scheduled", "manual"] = "scheduled"
    enabled: bool = True
    rule: Rule

    @model_validator(mode="after")
    def _value_type_fits_rule(self) -> TagDefinition:
        fits = value_types_of(self.rule)
        if self.value_type not in fits:
            raise ValueError(
                f"value_type {self.value_type!r} does not fit this {self.rule.kind} rule "
                f"(it gives {', '.join(sorted(fits))}: a comparison op/value or `equals` "
                "makes a boolean, a bare measure a number, a preference an enum)"
            )
        return self

"""Rule tags compiled to one SQL pipeline over the member facts (DuckDB dialect; Spark too).

`compile_tag_steps` turns the enabled, non-SQL definitions into `SqlStep`s ending in
``cm_out_tags(one_id, tag_id, value)``. The shape keeps the work set-based for 1,000,000
members: each fact is scanned once (``tg_agg_<fact>``: one GROUP BY one_id with every
measure any rule needs, each an aggregate FILTERed by its window and ``where``), each
distinct preference basis once (``tg_pref<n>``), each distinct count once
(``tg_distinct<n>``), then one wide row per member (``tg_wide``: a column per tag) is
unpivoted. Every step is read once by the next, so no engine recomputes a shared CTE.

Conventions (the tag YAML documents them for operators):

* days: calendar days in China (UTC+8, as ``order_day``). ``window_days: N`` keeps facts
  from the day N days before ``as_of``'s day on (``as_of`` itself included);
  ``days_since_last <= N`` is the same test. ``birthday_month_is_current`` uses the month
  of ``as_of``'s day in China.
* booleans: a NULL (no data) is false; ``not`` of it is true.
* values: boolean tags ``'true'`` (false gives no row), enum tags the value, number tags
  the number rounded to 4 decimals without trailing zeros (``3``, ``0.5``, ``-1.25``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mecdp.compute.facts import (
    MEMBERS,
    ORDERS,
    TREATMENTS,
    china_day,
    local_day,
    ts_literal,
    window_start,
)
from mecdp.compute.tag_columns import (
    FACT_COLUMNS,
    FACT_TIME,
    ColumnType,
    literal_of,
    number_literal,
)
from mecdp.compute.tag_rules import (
    AggregateRule,
    AllRule,
    AnyOf,
    AnyRule,
    Condition,
    NotRule,
    PreferenceRule,
    RuleModel,
    ShareRule,
    SqlRule,
    TagDefinition,
    TraitCondition,
    TraitRule,
)
from mecdp.store.engine import SqlStep

OUT_TAGS = "cm_out_tags"
COURSE_CARDS = "tg_course_cards"
FACT_TABLE = {
    "orders": ORDERS,
    "appointments": "cm_appointments",
    "treatments": TREATMENTS,
    "interactions": "cm_interactions",
    "events": "cm_events",
    "course_cards": COURSE_CARDS,
}
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def number_text(expr: str, *, whole: bool = False) -> str:
    """A number as tag text: 4 decimals at most, no trailing zeros (3, 0.5, -1.25).
    `whole` numbers (counts, sums of fen, days) skip the costly regular expressions."""
    if whole:
        return f"CAST(CAST({expr} AS BIGINT) AS VARCHAR)"
    fixed = f"CAST(CAST(round({expr}, 4) AS DECIMAL(38, 4)) AS VARCHAR)"
    return f"regexp_replace(regexp_replace({fixed}, '0+$', ''), '\\.$', '')"


def days_between(moment: str, as_of: datetime, *, is_date: bool = False) -> str:
    """Whole calendar days (China's) from `moment` (a UTC timestamp, or a date when
    `is_date`) to `as_of`'s day."""
    day = moment if is_date else local_day(moment)
    return f"date_diff('day', {day}, DATE '{china_day(as_of).isoformat()}')"


def condition_sql(condition: Condition, column: str, column_type: ColumnType) -> str:
    """`condition` on the SQL expression `column` (of `column_type`)."""
    op, value = condition.op, condition.value
    if op == "is_null":
        return f"({column} IS NULL)"
    if op == "not_null":
        return f"({column} IS NOT NULL)"
    literals = [literal_of(v, column_type) for v in _listed(value)]
    if op == "in":
        return f"({column} IN ({', '.join(literals)}))"
    if op == "not_in":
        return f"({column} IS NULL OR {column} NOT IN ({', '.join(literals)}))"
    if op == "between":
        return f"({column} BETWEEN {literals[0]} AND {literals[1]})"
    if op == "ne":
        return f"({column} IS NULL OR {column} <> {literals[0]})"
    return f"({column} {_COMPARE[op]} {literals[0]})"


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def compare_number(expr: str, op: str, value: object) -> str:
    """`expr op value` for a number comparison of a rule (NULL when expr is NULL)."""
    literals = [number_literal(v) for v in _listed(value)]
    if op == "between":
        return f"({expr} BETWEEN {literals[0]} AND {literals[1]})"
    return f"({expr} {_COMPARE[op]} {literals[0]})"


def where_sql(where: list[Condition | AnyOf], fact: str, alias: str = "") -> list[str]:
    """The `where` items as SQL predicates on the fact's columns."""
    columns = FACT_COLUMNS[fact]
    prefix = f"{alias}." if alias else ""
    parts = []
    for item in where:
        if isinstance(item, AnyOf):
            ors = [condition_sql(c, prefix + c.column, columns[c.column]) for c in item.any]
            parts.append("(" + " OR ".join(ors) + ")")
        else:
            parts.append(condition_sql(item, prefix + item.column, columns[item.column]))
    return parts


@dataclass
class _Preference:
    alias: str
    steps: list[SqlStep]


@dataclass
class TagCompiler:
    """Collects the measures the rules need per fact, then writes the pipeline."""

    as_of: datetime
    scope: str | None = None
    measures: dict[str, dict[str, str]] = field(default_factory=dict)  # fact: sql -> alias
    fact_windows: dict[str, set[int | None]] = field(default_factory=dict)
    preferences: dict[str, _Preference] = field(default_factory=dict)
    distincts: dict[tuple[str, str, str | None], SqlStep] = field(default_factory=dict)

    # --- pieces of SQL ----------------------------------------------------------------------

    def _in_scope(self) -> str:
        return f"one_id IN (SELECT one_id FROM {self.scope})" if self.scope else ""

    def _window(self, fact: str, window_days: int | None) -> str:
        if window_days is None:
            return ""
        return f"{FACT_TIME[fact]} >= {window_start(self.as_of, window_days)}"

    def _measure(self, fact: str, aggregate: str) -> str:
        """A column of ``tg_agg_<fact>`` computing `aggregate` (deduplicated)."""
        known = self.measures.setdefault(fact, {})
        alias = known.setdefault(aggregate, f"m{len(known)}")
        return f"f_{fact}.{alias}"

    def _conditional(
        self, fact: str, window_days: int | None, where: list[Condition | AnyOf]
    ) -> str | None:
        self.fact_windows.setdefault(fact, set()).add(window_days)
        parts = [p for p in [self._window(fact, window_days), *where_sql(where, fact)] if p]
        return " AND ".join(parts) if parts else None

    def _aggregate(
        self, fact: str, window_days: int | None, where: list[Condition | AnyOf], measure: str
    ) -> str:
        """The member's measure (NULL when it has no value; counts and sums are 0)."""
        cond = self._conditional(fact, window_days, where)
        name, _, column = measure.partition(":")
        if name in ("days_since_last", "days_since_first"):
            name, column = ("max" if name == "days_since_last" else "min"), FACT_TIME[fact]
            return days_between(
                self._aggregate(fact, window_days, where, f"{name}:{column}"), self.as_of
            )
        if name == "count_distinct":
            return f"coalesce({self._distinct(fact, column, cond)}.n, 0)"
        func = "count" if name == "count" else name
        agg = f"{func}({'*' if name == 'count' else column})"
        if cond:
            agg += f" FILTER (WHERE {cond})"
        ref = self._measure(fact, agg)
        return f"coalesce({ref}, 0)" if name in ("count", "sum") else ref

    def _distinct(self, fact: str, column: str, cond: str | None) -> str:
        """Alias of a step counting the member's distinct `column` values (a DISTINCT then a
        GROUP BY: far cheaper than count(DISTINCT) beside the fact's other aggregates)."""
        key = (fact, column, cond)
        if key not in self.distincts:
            alias = f"tg_distinct{len(self.distincts)}"
            preds = [f"{column} IS NOT NULL", cond or "", self._in_scope()]
            sql = (
                f"SELECT one_id, count(*) AS n FROM (\n"
                f"  SELECT DISTINCT one_id, {column} FROM {FACT_TABLE[fact]}\n"
                f"  WHERE {' AND '.join(p for p in preds if p)}\n) d GROUP BY one_id"
            )
            self.distincts[key] = SqlStep(sql, alias)
        return self.distincts[key].output_table_name

    def _share(self, rule: ShareRule) -> str:
        basis = "count" if rule.of == "count" else "sum:paid_fen"
        matching = self._aggregate(rule.fact, rule.window_days, rule.where, basis)
        total = self._aggregate(rule.fact, rule.window_days, [], basis)
        rows = self._aggregate(rule.fact, rule.window_days, [], "count")
        return (
            f"(CASE WHEN {rows} >= {rule.min_count} AND {total} > 0 "
            f"THEN CAST({matching} AS DOUBLE) / {total} END)"
        )

    def _preference(self, rule: PreferenceRule) -> str:
        """Alias of the member's top-value row for the rule's basis (shared by equal bases)."""
        key = rule.model_dump_json(include={"sources", "by", "window_days"})
        if key in self.preferences:
            return self.preferences[key].alias
        n = len(self.preferences)
        alias = f"tg_pref{n}"
        selects = []
        for source in rule.sources:
            table = FACT_TABLE[source.fact]
            weight = "CAST(paid_fen AS BIGINT)" if rule.by == "spend" else "CAST(1 AS BIGINT)"
            preds = [
                f"{source.column} IS NOT NULL",
                self._window(source.fact, rule.window_days),
                *where_sql(source.where, source.fact),
                self._in_scope(),
            ]
            selects.append(
                f"SELECT one_id, CAST({source.column} AS VARCHAR) AS pref_value, "
                f"{weight} AS weight FROM {table} WHERE {' AND '.join(p for p in preds if p)}"
            )
        sums = f"""
SELECT one_id, pref_value, sum(weight) AS weight, count(*) AS n
FROM {alias}_rows GROUP BY one_id, pref_value
"""
        # one ordering per member for the top value, the runner-up and the totals (Spark
        # takes no frame after a named window, so the spec is spelt out)
        order = "PARTITION BY one_id ORDER BY weight DESC, pref_value"
        whole = f"{order} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
        ranked = f"""
SELECT one_id, pref_value, weight, total_weight, total_n, next_weight FROM (
  SELECT one_id, pref_value, weight,
         sum(weight) OVER ({whole}) AS total_weight,
         sum(n) OVER ({whole}) AS total_n,
         lead(weight) OVER ({order}) AS next_weight,
         row_number() OVER ({order}) AS rn
  FROM {alias}_sums
) r WHERE rn = 1
"""
        if any(s.fact == "course_cards" for s in rule.sources):
            self.fact_windows.setdefault("course_cards", set())
        self.preferences[key] = _Preference(
            alias,
            [
                SqlStep("\nUNION ALL\n".join(selects), f"{alias}_rows"),
                SqlStep(sums, f"{alias}_sums"),
                SqlStep(ranked, alias),
            ],
        )
        return alias

    def _preferred(self, rule: PreferenceRule) -> str:
        """The member's preferred value, or NULL (too few rows, too small a share, a tie)."""
        p = self._preference(rule)
        clear = (
            f"{p}.total_n >= {rule.min_count} AND {p}.weight > 0 "
            f"AND {p}.weight >= {number_literal(rule.min_share)} * {p}.total_weight "
            f"AND ({p}.next_weight IS NULL OR {p}.next_weight < {p}.weight)"
        )
        return f"(CASE WHEN {clear} THEN {p}.pref_value END)"

    def _trait(self, condition: TraitCondition) -> str:
        if condition.helper == "birthday_month_is_current":
            return f"(month(m.birthday) = {china_day(self.as_of).month})"
        column = f"m.{condition.column}"
        column_type = FACT_COLUMNS["members"][str(condition.column)]
        if condition.helper == "days_since":
            at = ts_literal(self.as_of)
            days = days_between(column, self.as_of, is_date=column_type == "date")
            column = f"(CASE WHEN {column} <= {at} THEN {days} END)"
            column_type = "number"
        plain = Condition(
            column=str(condition.column), op=condition.op or "eq", value=condition.value
        )
        return condition_sql(plain, column, column_type)

    # --- rules to expressions ---------------------------------------------------------------

    def boolean(self, rule: RuleModel) -> str:
        """The rule as a predicate that is never NULL."""
        if isinstance(rule, AllRule | AnyRule):
            joiner = " AND " if isinstance(rule, AllRule) else " OR "
            return "(" + joiner.join(self.boolean(r) for r in rule.rules) + ")"
        if isinstance(rule, NotRule):
            return f"(NOT {self.boolean(rule.rule)})"
        if isinstance(rule, TraitRule):
            test = " AND ".join(self._trait(c) for c in rule.conditions)
        elif isinstance(rule, AggregateRule | ShareRule) and rule.op is not None:
            test = compare_number(self.number(rule), rule.op, rule.value)
        elif isinstance(rule, PreferenceRule) and rule.equals is not None:
            test = f"({self._preferred(rule)} = {literal_of(rule.equals, 'text')})"
        else:
            raise TypeError(f"a {rule.kind} rule here gives no true/false")
        return f"coalesce({test}, FALSE)"

    def number(self, rule: RuleModel) -> str:
        if isinstance(rule, ShareRule):
            return self._share(rule)
        if isinstance(rule, AggregateRule):
            return self._aggregate(rule.fact, rule.window_days, rule.where, rule.measure)
        raise TypeError(f"a {rule.kind} rule gives no number")

    def value(self, definition: TagDefinition) -> str:
        """The tag's text value for one member, or NULL for no tag row."""
        rule = definition.rule
        if definition.value_type == "boolean":
            return f"CASE WHEN {self.boolean(rule)} THEN 'true' END"
        if definition.value_type == "number":
            # every number column of the facts is whole: only averages and shares are not
            whole = isinstance(rule, AggregateRule) and not rule.measure.startswith("avg:")
            return number_text(self.number(rule), whole=whole)
        if not isinstance(rule, PreferenceRule):
            raise TypeError(f"a {rule.kind} rule gives no enum")
        return self._preferred(rule)

    # --- the pipeline -----------------------------------------------------------------------

    def _course_cards(self) -> SqlStep:
        scope = f" AND {self._in_scope()}" if self.scope else ""
        sql = f"""
SELECT b.one_id, b.item_code, b.sessions_bought,
       CAST(count(t.one_id) AS BIGINT) AS sessions_used,
       CAST(greatest(b.sessions_bought - count(t.one_id), 0) AS BIGINT) AS sessions_left,
       b.first_purchase_at, b.last_purchase_at
FROM (SELECT one_id, item_code,
             CAST(sum(coalesce(sessions, 0) * coalesce(quantity, 1)) AS BIGINT) AS sessions_bought,
             min(ordered_at) AS first_purchase_at, max(ordered_at) AS last_purchase_at
      FROM {ORDERS}
      WHERE order_type = 'course_card' AND item_code IS NOT NULL{scope}
      GROUP BY one_id, item_code) b
LEFT JOIN {TREATMENTS} t
  ON t.one_id = b.one_id AND t.item_code = b.item_code AND t.performed_at >= b.first_purchase_at
GROUP BY b.one_id, b.item_code, b.sessions_bought, b.first_purchase_at, b.last_purchase_at
"""
        return SqlStep(sql, COURSE_CARDS)

    def _fact_step(self, fact: str) -> SqlStep:
        windows = self.fact_windows.get(fact, set())
        preds = [self._in_scope()]
        if windows and None not in windows:  # every measure is windowed: skip older rows
            preds.append(self._window(fact, max(w for w in windows if w is not None)))
        where = " AND ".join(p for p in preds if p)
        columns = ", ".join(f"{sql} AS {alias}" for sql, alias in self.measures[fact].items())
        sql = (
            f"SELECT one_id, {columns}\nFROM {FACT_TABLE[fact]}\n"
            + (f"WHERE {where}\n" if where else "")
            + "GROUP BY one_id"
        )
        return SqlStep(sql, f"tg_agg_{fact}")

    def steps(self, definitions: list[TagDefinition]) -> list[SqlStep]:
        values = {d.tag_id: self.value(d) for d in definitions}  # fills measures/preferences
        steps: list[SqlStep] = []
        if "course_cards" in self.measures or "course_cards" in self.fact_windows:
            steps.append(self._course_cards())
        joins = []
        for fact in self.measures:
            steps.append(self._fact_step(fact))
            joins.append(f"LEFT JOIN tg_agg_{fact} f_{fact} ON f_{fact}.one_id = m.one_id")
        for preference in self.preferences.values():
            steps.extend(preference.steps)
            a = preference.alias
            joins.append(f"LEFT JOIN {a} {a} ON {a}.one_id = m.one_id")
        for distinct in self.distincts.values():
            steps.append(distinct)
            a = distinct.output_table_name
            joins.append(f"LEFT JOIN {a} {a} ON {a}.one_id = m.one_id")
        scope = f"\nWHERE m.{self._in_scope()}" if self.scope else ""
        if not values:
            return [SqlStep(_EMPTY, OUT_TAGS)]
        columns = ",\n       ".join(
            f"CAST({sql} AS VARCHAR) AS v_{tag_id}" for tag_id, sql in values.items()
        )
        wide = f"SELECT m.one_id,\n       {columns}\nFROM {MEMBERS} m\n" + "\n".join(joins) + scope
        steps.append(SqlStep(wide, "tg_wide"))
        # UNPIVOT (DuckDB and Spark) leaves out NULLs: a false boolean gives no row
        tag_columns = ", ".join(f"v_{tag_id}" for tag_id in values)
        out = f"""
SELECT CAST(one_id AS VARCHAR) AS one_id, substring(tag_column, 3) AS tag_id, value
FROM tg_wide UNPIVOT (value FOR tag_column IN ({tag_columns}))
WHERE value IS NOT NULL
"""
        steps.append(SqlStep(out, OUT_TAGS))
        return steps


_EMPTY = (
    "SELECT CAST(one_id AS VARCHAR) AS one_id, CAST(NULL AS VARCHAR) AS tag_id, "
    f"CAST(NULL AS VARCHAR) AS value FROM {MEMBERS} WHERE 1 = 0"
)


def compile_tag_steps(
    definitions: list[TagDefinition], as_of: datetime, scope: str | None = None
) -> list[SqlStep]:
    """The pipeline computing every enabled non-SQL tag into ``cm_out_tags``."""
    if scope is not None and not scope.replace("_", "").isalnum():
        raise ValueError(f"scope must be a table name, not {scope!r}")
    rule_tags = [d for d in definitions if d.enabled and not isinstance(d.rule, SqlRule)]
    return TagCompiler(as_of.replace(tzinfo=None), scope).steps(rule_tags)

"""Treatment cycles: each member's next-due date per treatment item.

`cycle_steps(config, as_of)` returns one pipeline (DuckDB-dialect `SqlStep`s, run on DuckDB
or Spark through the engine seam) over the member facts whose last step is ``cm_out_due``:
one row per (one_id, item_code) the member was treated with, exactly the columns of the
``treatment_due`` table but run_id:

``one_id, item_code, item_name, category, last_performed_at, cycle_days, due_on, status``

* last_performed_at: the latest treatment of the item; item_name and category from it.
* cycle_days, first found (``cycles`` in layering.yaml): the item code's entry in ``items``;
  the first ``name_patterns`` entry the item name contains (case-insensitive); the
  catalog's repeat_cycle_days; the ``category_defaults`` entry. None of these: no row
  (e.g. surgery). While a course card (疗程卡) of the item has sessions left as of as_of
  (course-card sessions bought minus treatments of the item since the first card
  purchase), the item's ``course_interval_days`` applies instead, when given.
* due_on = the day (in China, UTC+8) of last_performed_at + cycle_days.
* status: ``overdue`` when due_on is before as_of's day in China, ``upcoming`` (即将到期)
  when due_on is that day or up to ``upcoming_days`` days later, else ``not_due``.

Example:
    >>> from datetime import datetime
    >>> from mecdp.compute.config import LayeringConfig
    >>> cycle_steps(LayeringConfig.load(), datetime(2025, 1, 1))[-1].output_table_name
    'cm_out_due'
"""

from __future__ import annotations

from datetime import datetime

from mecdp.compute.config import CycleRules, LayeringConfig, sql_string
from mecdp.compute.facts import ORDERS, TREATMENTS, day_literal, local_day
from mecdp.store.engine import SqlStep

OUTPUT = "cm_out_due"


def _literal(value: object, sql_type: str) -> str:
    text = "NULL" if value is None else sql_string(value) if isinstance(value, str) else value
    return f"CAST({text} AS {sql_type})"


def _rows(columns: str, types: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """A small typed literal table ``(...) AS alias(columns)`` (empty when no rows)."""
    if not rows:
        nulls = ", ".join(_literal(None, t) for t in types)
        return f"(SELECT {nulls} WHERE FALSE) AS {columns}"
    body = ", ".join(
        "(" + ", ".join(_literal(v, t) for v, t in zip(row, types, strict=True)) + ")"
        for row in rows
    )
    return f"(VALUES {body}) AS {columns}"


def _item_rule_steps(rules: CycleRules) -> list[SqlStep]:
    """Each distinct treated item's cycle and course interval (a few hundred rows: the rules
    are matched once per item, never per member)."""
    overrides = _rows(
        "o(item_code, cycle_days, course_interval_days)",
        ("VARCHAR", "INTEGER", "INTEGER"),
        [(code, s.cycle_days, s.course_interval_days) for code, s in rules.items.items()],
    )
    patterns = _rows(
        "p(pos, pattern, cycle_days, course_interval_days)",
        ("INTEGER", "VARCHAR", "INTEGER", "INTEGER"),
        [
            (i, e.pattern.lower(), e.cycle_days, e.course_interval_days)
            for i, e in enumerate(rules.name_patterns)
        ],
    )
    defaults = _rows(
        "d(category, cycle_days)",
        ("VARCHAR", "INTEGER"),
        list(rules.category_defaults.items()),
    )
    names = f"""
SELECT n.item_name, min(p.pos) AS pos
FROM (SELECT DISTINCT item_name FROM cy_item WHERE item_name IS NOT NULL) n
JOIN {patterns} ON lower(n.item_name) LIKE '%' || p.pattern || '%'
GROUP BY n.item_name
"""
    item_rules = f"""
SELECT i.item_code, i.item_name, i.category, i.catalog_cycle_days,
       coalesce(o.cycle_days, p.cycle_days, i.catalog_cycle_days, d.cycle_days) AS cycle_days,
       CASE WHEN o.item_code IS NOT NULL THEN o.course_interval_days
            ELSE p.course_interval_days END AS course_interval_days
FROM (SELECT DISTINCT item_code, item_name, category, catalog_cycle_days FROM cy_item) i
LEFT JOIN {overrides} ON o.item_code = i.item_code
LEFT JOIN cy_name_match m ON m.item_name = i.item_name
LEFT JOIN {patterns} ON p.pos = m.pos
LEFT JOIN {defaults} ON d.category = i.category
"""
    return [SqlStep(names, "cy_name_match"), SqlStep(item_rules, "cy_item_rule")]


def cycle_steps(config: LayeringConfig, as_of: datetime) -> list[SqlStep]:
    """The pipeline whose last step is ``cm_out_due``."""
    rules = config.cycles
    per_item = f"""
SELECT one_id, item_code, arg_max(item_name, performed_at) AS item_name,
       arg_max(category, performed_at) AS category,
       max(performed_at) AS last_performed_at,
       max(CASE WHEN repeat_cycle_days > 0 THEN repeat_cycle_days END) AS catalog_cycle_days
FROM {TREATMENTS} WHERE item_code IS NOT NULL
GROUP BY one_id, item_code
"""
    cycles = """
SELECT i.one_id, i.item_code, i.item_name, i.category, i.last_performed_at, r.cycle_days,
       r.course_interval_days
FROM cy_item i
JOIN cy_item_rule r
  ON r.item_code = i.item_code AND r.item_name IS NOT DISTINCT FROM i.item_name
 AND r.category IS NOT DISTINCT FROM i.category
 AND r.catalog_cycle_days IS NOT DISTINCT FROM i.catalog_cycle_days
WHERE r.cycle_days IS NOT NULL
"""
    cards = f"""
SELECT one_id, item_code, sum(coalesce(sessions, 0) * coalesce(quantity, 1)) AS sessions_bought,
       min(ordered_at) AS first_purchase_at
FROM {ORDERS} WHERE order_type = 'course_card' AND item_code IS NOT NULL
GROUP BY one_id, item_code
"""
    open_cards = f"""
SELECT c.one_id, c.item_code
FROM cy_card c
LEFT JOIN {TREATMENTS} t
  ON t.one_id = c.one_id AND t.item_code = c.item_code AND t.performed_at >= c.first_purchase_at
GROUP BY c.one_id, c.item_code, c.sessions_bought
HAVING c.sessions_bought > count(t.record_id)
"""
    due = """
SELECT y.one_id, y.item_code, y.item_name, y.category, y.last_performed_at,
       CAST(CASE WHEN o.one_id IS NOT NULL THEN coalesce(y.course_interval_days, y.cycle_days)
                 ELSE y.cycle_days END AS INTEGER) AS cycle_days
FROM cy_cycle y
LEFT JOIN cy_open_card o ON o.one_id = y.one_id AND o.item_code = y.item_code
"""
    today = day_literal(as_of)
    horizon = day_literal(as_of, rules.upcoming_days)
    out = f"""
SELECT one_id, item_code, item_name, category, last_performed_at, cycle_days, due_on,
       CASE WHEN due_on < {today} THEN 'overdue'
            WHEN due_on <= {horizon} THEN 'upcoming'
            ELSE 'not_due' END AS status
FROM (SELECT d.*, CAST({local_day("last_performed_at")} + cycle_days AS DATE) AS due_on
      FROM cy_due d) x
"""
    return [
        SqlStep(per_item, "cy_item"),
        *_item_rule_steps(rules),
        SqlStep(cycles, "cy_cycle"),
        SqlStep(cards, "cy_card"),
        SqlStep(open_cards, "cy_open_card"),
        SqlStep(due, "cy_due"),
        SqlStep(out, OUTPUT),
    ]

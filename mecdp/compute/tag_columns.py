"""The inputs a tag rule may name, with their types, and literals of those types.

`FACT_COLUMNS` lists each input's columns (the member facts of `mecdp.compute.facts` plus
the 疗程卡 balances the tag engine derives, ``course_cards``); `FACT_TIME` the moment of each
fact row. `literal_of` renders a rule's value as SQL both engines read, or refuses a value
that does not fit the column's type, so a bad value fails when a definition is loaded.

Example:
    >>> literal_of("it's", "text"), literal_of("2025-06-01", "date")
    ("'it''s'", "DATE '2025-06-01'")
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

ColumnType = Literal["text", "number", "boolean", "timestamp", "date"]

# The columns a rule may name, per input (the member facts of mecdp.compute.facts, plus the
# course-card balances the tag engine derives from them). Every "number" column holds whole
# numbers (fen, sessions, days): number tags print them without decimals.
FACT_COLUMNS: dict[str, dict[str, ColumnType]] = {
    "members": {
        "one_id": "text",
        "gender": "text",
        "birthday": "date",
        "city": "text",
        "home_store": "text",
        "member_level": "text",
        "first_seen": "timestamp",
        "last_seen": "timestamp",
        "first_order_at": "timestamp",
    },
    "orders": {
        "one_id": "text",
        "record_id": "text",
        "order_no": "text",
        "ordered_at": "timestamp",
        "order_day": "date",
        "quantity": "number",
        "paid_fen": "number",
        "amount_fen": "number",
        "promo": "boolean",
        "item_code": "text",
        "category": "text",
        "price_band": "text",
        "luxury": "boolean",
        "order_type": "text",
        "sessions": "number",
        "store_code": "text",
        "channel": "text",
    },
    "appointments": {
        "one_id": "text",
        "record_id": "text",
        "appointment_no": "text",
        "scheduled_at": "timestamp",
        "arrived_at": "timestamp",
        "status": "text",
        "item_code": "text",
        "store_code": "text",
        "channel": "text",
        "consultant": "text",
    },
    "treatments": {
        "one_id": "text",
        "record_id": "text",
        "treatment_no": "text",
        "performed_at": "timestamp",
        "item_code": "text",
        "item_name": "text",
        "category": "text",
        "repeat_cycle_days": "number",
        "store_code": "text",
    },
    "interactions": {
        "one_id": "text",
        "record_id": "text",
        "occurred_at": "timestamp",
        "channel": "text",
        "type": "text",
        "topic": "text",
        "topic_category": "text",
    },
    "events": {
        "one_id": "text",
        "record_id": "text",
        "occurred_at": "timestamp",
        "channel": "text",
        "type": "text",
        "event": "text",
    },
    # 疗程卡 per (member, item): sessions bought on course cards minus treatments of the item
    # since the first purchase (as the golden record's profile_course_cards, as of the run).
    "course_cards": {
        "one_id": "text",
        "item_code": "text",
        "sessions_bought": "number",
        "sessions_used": "number",
        "sessions_left": "number",
        "first_purchase_at": "timestamp",
        "last_purchase_at": "timestamp",
    },
}
# The moment of each fact row: windows and days_since_last/first use it.
FACT_TIME = {
    "orders": "ordered_at",
    "appointments": "scheduled_at",
    "treatments": "performed_at",
    "interactions": "occurred_at",
    "events": "occurred_at",
    "course_cards": "last_purchase_at",
}
Fact = Literal["orders", "appointments", "treatments", "interactions", "events", "course_cards"]


# --- literals -------------------------------------------------------------------------------


def literal_of(value: Any, column_type: ColumnType) -> str:
    """`value` as a SQL literal of `column_type` (both engines read it); ValueError if it
    does not fit the type."""
    if column_type == "text":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{value!r} is not text")
        return "'" + str(value).replace("'", "''") + "'"
    if column_type == "number":
        return number_literal(value)
    if column_type == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return "TRUE" if value else "FALSE"
    moment = _moment(value)
    if column_type == "date":
        day = moment.date() if isinstance(moment, datetime) else moment
        return f"DATE '{day.isoformat()}'"
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    return f"TIMESTAMP '{moment.replace(tzinfo=None).isoformat(sep=' ')}'"


def number_literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, float) and value != value:  # NaN
        raise ValueError("NaN is not a number")
    return repr(value)


def _moment(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not an ISO date or time")

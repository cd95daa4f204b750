"""The member facts every layering stage reads: each canonical fact under its person.

`fact_steps(as_of)` returns `SqlStep`s (DuckDB dialect, run on DuckDB or Spark through the
engine seam) that a compute run materialises once as tables; the tag engine, RFM, CLV,
behaviour tiers and treatment cycles all read these instead of the raw tables. Facts after
`as_of` are left out, so a run "as of" a past date sees what was known then (and a
calibration/holdout split is two runs).

Tables (all keyed by ``one_id``; only persons with a golden record in ``profiles``):

* ``cm_members``: one row per person: the golden record's basics.
* ``cm_orders``: one row per paid order line (void orders left out), with the catalog's
  category, price band and luxury flag; ``order_day`` (the calendar day in China, UTC+8,
  no daylight saving) for purchase-day counts.
* ``cm_appointments``: appointments with status (booked, arrived, no_show, cancelled).
* ``cm_treatments``: treatments with the catalog's repeat cycle.
* ``cm_interactions``: social, chat, call-centre and ticket interactions, with the treatment
  category their topic names (content preference).
* ``cm_events``: tracked events (web, app, mini-program).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from mecdp.store.engine import SqlStep

# Orders in these states bring no spend (as in the golden record).
VOID_ORDER_STATUSES = ("refunded", "cancelled", "canceled", "void")

MEMBERS = "cm_members"
ORDERS = "cm_orders"
APPOINTMENTS = "cm_appointments"
TREATMENTS = "cm_treatments"
INTERACTIONS = "cm_interactions"
EVENTS = "cm_events"
FACT_TABLES = (MEMBERS, ORDERS, APPOINTMENTS, TREATMENTS, INTERACTIONS, EVENTS)

INPUT_TABLES = (
    "profiles",
    "identity_records",
    "catalog",
    "orders",
    "appointments",
    "treatments",
    "interactions",
    "events",
    "sources",
)


# Stored times are UTC; a chain's calendar days are China's (UTC+8, no daylight saving).
CHINA_UTC_OFFSET_HOURS = 8


def local_day(timestamp_sql: str) -> str:
    """SQL for the calendar day in China of a UTC timestamp expression."""
    return f"CAST({timestamp_sql} + INTERVAL {CHINA_UTC_OFFSET_HOURS} HOUR AS DATE)"


def ts_literal(moment: datetime) -> str:
    """A timestamp literal both engines read (naive, to the microsecond)."""
    return f"TIMESTAMP '{moment.replace(tzinfo=None).isoformat(sep=' ')}'"


def china_day(moment: datetime) -> date:
    """The calendar day in China of a naive UTC moment."""
    return (moment + timedelta(hours=CHINA_UTC_OFFSET_HOURS)).date()


def day_literal(as_of: datetime, plus_days: int = 0) -> str:
    """as_of's day in China (+ `plus_days`) as a DATE literal both engines read."""
    return f"DATE '{(china_day(as_of) + timedelta(days=plus_days)).isoformat()}'"


def window_start(as_of: datetime, days: int) -> str:
    """The first stored (UTC) moment of the `days`-day window ending at as_of: midnight in
    China of the window's first day, so a fact is inside exactly when at most N days old."""
    first_day = china_day(as_of) - timedelta(days=days)
    midnight = datetime.combine(first_day, time()) - timedelta(hours=CHINA_UTC_OFFSET_HOURS)
    return ts_literal(midnight)


def fact_steps(as_of: datetime, scope: str | None = None) -> list[tuple[SqlStep, ...]]:
    """One pipeline per fact table (the last step's output name is the table).

    `scope` names a table of one_ids: only those persons (an event refresh); else everyone.
    """
    at = ts_literal(as_of)
    persons = (
        f"(SELECT p.* FROM profiles p JOIN {scope} s ON s.one_id = p.one_id)"
        if scope
        else "profiles"
    )
    # A full run takes every linked record (a profile build follows each resolve, so their
    # one_ids have golden records; the stages start from cm_members): one join fewer on
    # millions of rows.
    person_join = f"JOIN {persons} p ON p.one_id = r.one_id" if scope else ""
    void = ", ".join(f"'{s}'" for s in VOID_ORDER_STATUSES)
    members = f"""
SELECT one_id, gender, birthday, city, home_store, member_level, first_seen, last_seen,
       first_order_at
FROM {persons} p
"""
    orders = f"""
SELECT r.one_id, o.record_id, o.order_no, o.ordered_at,
       {local_day("o.ordered_at")} AS order_day, o.quantity,
       CAST(coalesce(o.paid_fen, o.amount_fen) AS BIGINT) AS paid_fen,
       CAST(o.amount_fen AS BIGINT) AS amount_fen,
       coalesce(o.promo, FALSE) AS promo, o.item_code, coalesce(o.category, c.category) AS category,
       c.price_band, coalesce(c.luxury, FALSE) AS luxury,
       coalesce(o.order_type, 'normal') AS order_type, o.sessions, o.store_code, o.channel
FROM orders o
JOIN identity_records r ON r.record_id = o.record_id
{person_join}
LEFT JOIN catalog c ON c.item_code = o.item_code
WHERE coalesce(o.status, '') NOT IN ({void}) AND o.ordered_at <= {at}
"""
    appointments = f"""
SELECT r.one_id, a.record_id, a.appointment_no, a.scheduled_at, a.arrived_at, a.status,
       a.item_code, a.store_code, a.channel, a.consultant
FROM appointments a
JOIN identity_records r ON r.record_id = a.record_id
{person_join}
WHERE a.scheduled_at <= {at}
"""
    treatments = f"""
SELECT r.one_id, t.record_id, t.treatment_no, t.performed_at, t.item_code,
       coalesce(c.name, t.item_name) AS item_name, coalesce(t.category, c.category) AS category,
       c.repeat_cycle_days, t.store_code
FROM treatments t
JOIN identity_records r ON r.record_id = t.record_id
{person_join}
LEFT JOIN catalog c ON c.item_code = t.item_code
WHERE t.performed_at <= {at}
"""
    interactions = f"""
SELECT r.one_id, i.record_id, i.occurred_at, i.channel, i.type, i.topic,
       c.category AS topic_category
FROM interactions i
JOIN identity_records r ON r.record_id = i.record_id
{person_join}
LEFT JOIN (SELECT name, min(category) AS category FROM catalog GROUP BY name) c
  ON c.name = i.topic
WHERE i.occurred_at <= {at}
"""
    events = f"""
SELECT r.one_id, e.record_id, e.occurred_at, coalesce(e.channel, s.channel) AS channel, e.type,
       e.event
FROM events e
JOIN identity_records r ON r.record_id = e.record_id
{person_join}
LEFT JOIN sources s ON s.source_id = e.source_id
WHERE e.occurred_at <= {at}
"""
    return [
        (SqlStep(members, MEMBERS),),
        (SqlStep(orders, ORDERS),),
        (SqlStep(appointments, APPOINTMENTS),),
        (SqlStep(treatments, TREATMENTS),),
        (SqlStep(interactions, INTERACTIONS),),
        (SqlStep(events, EVENTS),),
    ]

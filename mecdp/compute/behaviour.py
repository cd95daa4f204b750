"""Behaviour tiers per member: purchase behaviour, interaction tier, preferred category.

`behaviour_steps(config, as_of)` returns one pipeline (DuckDB-dialect `SqlStep`s, run on
DuckDB or Spark through the engine seam) over the member facts whose last step is
``cm_out_behaviour``, one row per member of ``cm_members``:

* ``purchase_tier``: the first of the ordered ``behaviour.purchase.rules`` a member matches
  (layering.yaml), else ``regular`` with orders, ``none`` without: vip (VIP 高端服务常客:
  at least N high-end orders, i.e. a line in a high price band or a luxury item, or spend
  >= X, in the window), course (疗程型: course-card orders in the window), promotion_driven
  (促销驱动型: share of window orders with a promo line >= s and at least n orders),
  one_time (单次体验型: exactly one order ever). Orders count by distinct order_no.
* ``interaction_tier``: interactions plus tracked events (of ``event_types``) at most
  ``window_days`` calendar days old (days in China, UTC+8, as everywhere in layering);
  score = recency points (days from the last touch to as_of, first band with
  days <= max_days) + frequency points (touches, first band
  with touches >= min_count) + breadth points (distinct channels, likewise), bands tried
  highest points first; ``high`` when score >= high_min_score, ``low`` for any other
  member with a touch, ``none`` without.
* ``interaction_score``, ``interaction_channels`` (breadth), ``interactions_90d`` (touches in
  the window; 90 days by default).
* ``preferred_category``: among ``preference_categories``, the one with the most paid
  spend (all history), then the most treatments, then the most interactions whose topic is
  a catalog item of the category; ties go to the earlier listed category. NULL without any.

Example:
    >>> from datetime import datetime
    >>> from mecdp.compute.config import LayeringConfig
    >>> behaviour_steps(LayeringConfig.load(), datetime(2025, 1, 1))[-1].output_table_name
    'cm_out_behaviour'
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mecdp.compute.config import (
    CountBand,
    CourseRule,
    InteractionRules,
    LayeringConfig,
    OneTimeRule,
    PromotionRule,
    PurchaseRules,
    RecencyBand,
    VipRule,
    sql_string,
    sql_strings,
)
from mecdp.compute.facts import (
    EVENTS,
    INTERACTIONS,
    MEMBERS,
    ORDERS,
    TREATMENTS,
    day_literal,
    local_day,
    window_start,
)
from mecdp.store.engine import SqlStep

OUTPUT = "cm_out_behaviour"


def _purchase_steps(rules: PurchaseRules, as_of: datetime) -> list[SqlStep]:
    vip = next((r for r in rules.rules if isinstance(r, VipRule)), None)
    high_end = "FALSE"
    if vip is not None:
        high_end = f"price_band IN ({sql_strings(vip.high_end_price_bands)})"
        if vip.count_luxury_items:
            high_end = f"({high_end} OR luxury)"
    in_window = "TRUE"
    if rules.window_days is not None:
        in_window = f"max(ordered_at) >= {window_start(as_of, rules.window_days)}"
    per_order = f"""
SELECT one_id, order_no, {in_window} AS in_window,
       sum(coalesce(paid_fen, 0)) AS paid_fen,
       max(CASE WHEN {high_end} THEN 1 ELSE 0 END) AS high_end,
       max(CASE WHEN promo THEN 1 ELSE 0 END) AS promo,
       max(CASE WHEN order_type = 'course_card' THEN 1 ELSE 0 END) AS course_card
FROM {ORDERS} GROUP BY one_id, order_no
"""
    per_member = """
SELECT one_id, count(*) AS orders_ever,
       sum(CASE WHEN in_window THEN 1 ELSE 0 END) AS orders_window,
       sum(CASE WHEN in_window THEN paid_fen ELSE 0 END) AS spend_window,
       sum(CASE WHEN in_window THEN high_end ELSE 0 END) AS high_end_orders,
       sum(CASE WHEN in_window THEN promo ELSE 0 END) AS promo_orders,
       sum(CASE WHEN in_window THEN course_card ELSE 0 END) AS course_card_orders
FROM bh_order GROUP BY one_id
"""
    whens = []
    for rule in rules.rules:
        if isinstance(rule, VipRule):
            cond = f"high_end_orders >= {rule.min_high_end_orders}"
            if rule.min_spend_fen is not None:
                cond = f"({cond} OR spend_window >= {rule.min_spend_fen})"
        elif isinstance(rule, CourseRule):
            cond = f"course_card_orders >= {rule.min_course_card_orders}"
        elif isinstance(rule, PromotionRule):
            cond = (
                f"orders_window >= {rule.min_orders} AND "
                f"CAST(promo_orders AS DOUBLE) / orders_window "
                f">= CAST({rule.min_promo_share!r} AS DOUBLE)"
            )
        elif isinstance(rule, OneTimeRule):
            cond = "orders_ever = 1"
        whens.append(f"WHEN {cond} THEN '{rule.tier}'")
    tier = f"CASE {' '.join(whens)} ELSE 'regular' END" if whens else "'regular'"
    tiered = f"SELECT one_id, {tier} AS purchase_tier FROM bh_member_orders"
    return [
        SqlStep(per_order, "bh_order"),
        SqlStep(per_member, "bh_member_orders"),
        SqlStep(tiered, "bh_purchase"),
    ]


def _points(value: str, bands: Sequence[RecencyBand | CountBand]) -> str:
    """Points of the first band `value` reaches, highest points first (0 for none)."""
    whens = []
    for band in sorted(bands, key=lambda b: -b.points):
        if isinstance(band, RecencyBand):
            whens.append(f"WHEN {value} <= {band.max_days} THEN {band.points}")
        else:
            whens.append(f"WHEN {value} >= {band.min_count} THEN {band.points}")
    if not whens:
        return "0"
    return f"CASE {' '.join(whens)} ELSE 0 END"


def _interaction_steps(rules: InteractionRules, as_of: datetime) -> list[SqlStep]:
    start = window_start(as_of, rules.window_days)
    event_filter = ""
    if rules.event_types is not None:
        event_filter = f"AND type IN ({sql_strings(rules.event_types)})"
    touches = f"""
SELECT one_id, occurred_at, channel FROM {INTERACTIONS} WHERE occurred_at >= {start}
UNION ALL
SELECT one_id, occurred_at, channel FROM {EVENTS} WHERE occurred_at >= {start} {event_filter}
"""
    # per channel first: cheaper than count(DISTINCT channel) over every touch
    per_member = f"""
SELECT one_id, sum(touches) AS touches, count(channel) AS channels,
       date_diff('day', {local_day("max(last_at)")}, {day_literal(as_of)}) AS days_since
FROM (SELECT one_id, channel, count(*) AS touches, max(occurred_at) AS last_at
      FROM bh_touch GROUP BY one_id, channel) c
GROUP BY one_id
"""
    score = " + ".join(
        (
            _points("days_since", rules.recency_points),
            _points("touches", rules.frequency_points),
            _points("channels", rules.breadth_points),
        )
    )
    scored = f"""
SELECT one_id, touches, channels, CAST({score} AS INTEGER) AS score
FROM bh_member_touches
"""
    return [
        SqlStep(touches, "bh_touch"),
        SqlStep(per_member, "bh_member_touches"),
        SqlStep(scored, "bh_interaction"),
    ]


def _preference_steps(categories: list[str]) -> list[SqlStep]:
    listed = sql_strings(categories)
    rank = " ".join(f"WHEN {sql_string(c)} THEN {i}" for i, c in enumerate(categories))
    signals = f"""
SELECT one_id, category, coalesce(paid_fen, 0) AS spend, 0 AS treatments, 0 AS interactions
FROM {ORDERS} WHERE category IN ({listed})
UNION ALL
SELECT one_id, category, 0, 1, 0 FROM {TREATMENTS} WHERE category IN ({listed})
UNION ALL
SELECT one_id, topic_category, 0, 0, 1 FROM {INTERACTIONS} WHERE topic_category IN ({listed})
"""
    ranked = f"""
SELECT one_id, category FROM (
    SELECT one_id, category,
           row_number() OVER (PARTITION BY one_id
                              ORDER BY sum(spend) DESC, sum(treatments) DESC,
                                       sum(interactions) DESC,
                                       CASE category {rank} END) AS rn
    FROM bh_signal GROUP BY one_id, category) x
WHERE rn = 1
"""
    return [SqlStep(signals, "bh_signal"), SqlStep(ranked, "bh_preference")]


def behaviour_steps(config: LayeringConfig, as_of: datetime) -> list[SqlStep]:
    """The pipeline whose last step is ``cm_out_behaviour``."""
    rules = config.behaviour
    high = rules.interaction.high_min_score
    out = f"""
SELECT m.one_id, coalesce(p.purchase_tier, 'none') AS purchase_tier,
       CASE WHEN i.one_id IS NULL THEN 'none'
            WHEN i.score >= {high} THEN 'high' ELSE 'low' END AS interaction_tier,
       CAST(coalesce(i.score, 0) AS INTEGER) AS interaction_score,
       CAST(coalesce(i.channels, 0) AS INTEGER) AS interaction_channels,
       CAST(coalesce(i.touches, 0) AS BIGINT) AS interactions_90d,
       c.category AS preferred_category
FROM {MEMBERS} m
LEFT JOIN bh_purchase p ON p.one_id = m.one_id
LEFT JOIN bh_interaction i ON i.one_id = m.one_id
LEFT JOIN bh_preference c ON c.one_id = m.one_id
"""
    return [
        *_purchase_steps(rules.purchase, as_of),
        *_interaction_steps(rules.interaction, as_of),
        *_preference_steps(rules.preference_categories),
        SqlStep(out, OUTPUT),
    ]

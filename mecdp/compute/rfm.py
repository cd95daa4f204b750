"""RFM per member: values, 1..5 scores, the eight classic groups and three operating tiers.

`rfm_pipelines(config, as_of)` returns five pipelines (DuckDB-dialect `SqlStep`s, run on
DuckDB or Spark through the engine seam), to run in order, each into its output table; they
read the member facts (`mecdp.compute.facts`) and nothing else:

1. ``cm_rfm_values`` (work table): members with at least one paid order:
   ``one_id, recency_days, frequency, monetary_fen``.
   recency_days = calendar days (in China, UTC+8, like ``order_day``) from the last paid
   order to as_of (all history); frequency = distinct orders and monetary_fen = paid spend
   in the window of ``rfm.window_days`` days (from midnight in China that many days before
   as_of's day up to as_of: an order is in it exactly when recency_days would be at most
   window_days).
2. ``cm_rfm_hist``, ``cm_rfm_cuts`` (work tables): members per (metric, value); the cut-offs
   c1..c4 per metric.
3. ``cm_out_rfm_cutoffs``: how scores were given, one row per (metric, score):
   ``metric, score, lower_bound, upper_bound, method, members, high``: a value scores
   `score` when ``lower_bound < value <= upper_bound`` (NULL = unbounded);
   method ``quintile`` (20/40/60/80% nearest-rank quantiles over all members with orders,
   so equal values always score the same) or ``fixed`` (layering.yaml); members = how many
   got the score; high = whether the score counts as high for the eight groups.
4. ``cm_out_rfm``: every member of ``cm_members``:
   ``one_id, recency_days, frequency, monetary_fen, r_score, f_score, m_score, rfm_segment,
   value_tier``. Members without orders: recency_days and scores NULL, frequency and
   monetary 0, rfm_segment NULL, value_tier dormant when first seen more than
   ``rfm.dormant_after_days`` days ago (or never), else potential (a new lead).
   Any member with no paid order in more than ``dormant_after_days`` days is dormant.

`explain_rfm` turns one member's row plus the cut-off rows into an explanation.

Example:
    >>> from datetime import datetime
    >>> from mecdp.compute.config import LayeringConfig
    >>> [out for _, out in rfm_pipelines(LayeringConfig.load(), datetime(2025, 1, 1))]
    ['cm_rfm_values', 'cm_rfm_hist', 'cm_rfm_cuts', 'cm_out_rfm_cutoffs', 'cm_out_rfm']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mecdp.compute.config import (
    RFM_METRICS,
    SEGMENTS,
    LayeringConfig,
    RfmRules,
)
from mecdp.compute.facts import MEMBERS, ORDERS, day_literal, local_day, window_start
from mecdp.store.engine import SqlStep

VALUES = "cm_rfm_values"
HIST = "cm_rfm_hist"
CUTS = "cm_rfm_cuts"
WORK_TABLES = (VALUES, HIST, CUTS)
CUTOFFS = "cm_out_rfm_cutoffs"
OUTPUT = "cm_out_rfm"
SCORE_LETTER = {"recency_days": "r", "frequency": "f", "monetary_fen": "m"}


def _values_sql(rules: RfmRules, as_of: datetime) -> str:
    # one pass over the order lines: a single distinct count is cheaper than grouping
    # 10M lines by order first
    start = window_start(as_of, rules.window_days)
    return f"""
SELECT one_id,
       CAST(date_diff('day', max(order_day), {day_literal(as_of)}) AS INTEGER)
           AS recency_days,
       CAST(count(DISTINCT CASE WHEN ordered_at >= {start} THEN order_no END) AS BIGINT)
           AS frequency,
       CAST(sum(CASE WHEN ordered_at >= {start} THEN coalesce(paid_fen, 0) ELSE 0 END) AS BIGINT)
           AS monetary_fen
FROM {ORDERS}
GROUP BY one_id
"""


def _cut_columns(metric: str) -> list[str]:
    return [f"{SCORE_LETTER[metric]}_cut{k}" for k in range(1, 5)]


def _score_sql(metric: str, value: str) -> str:
    """Score 1..5 of `value` against the cut-off columns c1..c4 (recency inverted)."""
    above = " + ".join(f"CASE WHEN {value} > {c} THEN 1 ELSE 0 END" for c in _cut_columns(metric))
    if metric == "recency_days":
        return f"CAST(5 - ({above}) AS INTEGER)"
    return f"CAST(1 + {above} AS INTEGER)"


def _hist_sql() -> str:
    """How many members have each value of each metric (quantiles and averages read it)."""
    values = "\nUNION ALL\n".join(
        f"SELECT '{m}' AS metric, CAST({m} AS DOUBLE) AS value FROM {VALUES}" for m in RFM_METRICS
    )
    return f"SELECT metric, value, count(*) AS n FROM ({values}) x GROUP BY metric, value"


def _quintile_metrics(rules: RfmRules) -> list[str]:
    return [m for m in RFM_METRICS if rules.cutoffs.for_metric(m) is None]


def _cuts_sql(rules: RfmRules) -> str:
    """(metric, k, cutoff): c1..c4 per metric, quantiles or fixed."""
    quintile = _quintile_metrics(rules)
    parts = []
    if quintile:
        listed = ", ".join(f"'{m}'" for m in quintile)
        parts.append(
            f"""
SELECT metric, k, min(value) AS cutoff
FROM (SELECT metric, value,
             sum(n) OVER (PARTITION BY metric ORDER BY value
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum,
             sum(n) OVER (PARTITION BY metric) AS total
      FROM {HIST} WHERE metric IN ({listed})) c
CROSS JOIN (VALUES (1), (2), (3), (4)) AS ks(k)
WHERE cum >= ceil(CAST(k * total AS DOUBLE) / 5)
GROUP BY metric, k
"""
        )
    for metric in RFM_METRICS:
        fixed = rules.cutoffs.for_metric(metric)
        if fixed is not None:
            rows = ", ".join(f"({k}, CAST({v!r} AS DOUBLE))" for k, v in enumerate(fixed, 1))
            parts.append(
                f"SELECT '{metric}' AS metric, k, cutoff FROM (VALUES {rows}) AS f(k, cutoff)"
            )
    return "\nUNION ALL\n".join(parts)


def _cutoff_steps(rules: RfmRules) -> list[SqlStep]:
    quintile = _quintile_metrics(rules)
    # each distinct value's score: one per cut-off below it (recency counts down from 5)
    scored = f"""
SELECT h.metric, h.n,
       CASE WHEN h.metric = 'recency_days' THEN 5 - count(c.k) ELSE 1 + count(c.k) END AS score
FROM {HIST} h LEFT JOIN {CUTS} c ON c.metric = h.metric AND h.value > c.cutoff
GROUP BY h.metric, h.value, h.n
"""
    per_score = """
SELECT metric, score, sum(n) AS members,
       sum(sum(score * n)) OVER (PARTITION BY metric) / sum(sum(n)) OVER (PARTITION BY metric)
           AS avg_score
FROM rfm_scored GROUP BY metric, score
"""
    # per (metric, score): the cut-off below and above; recency runs the other way
    skeleton = ", ".join(
        f"('{m}', {s}, {s - 1 if m != 'recency_days' else 5 - s}, "
        f"{s if m != 'recency_days' else 6 - s}, '{'quintile' if m in quintile else 'fixed'}')"
        for m in RFM_METRICS
        for s in range(1, 6)
    )
    if rules.high_rule == "threshold":
        high = f"sk.score >= {rules.high_score_threshold}"
    else:
        high = "sk.score >= max(n.avg_score) OVER (PARTITION BY sk.metric)"
    out = f"""
SELECT sk.metric, CAST(sk.score AS INTEGER) AS score, lo.cutoff AS lower_bound,
       hi.cutoff AS upper_bound, sk.method,
       CAST(coalesce(n.members, 0) AS BIGINT) AS members,
       coalesce({high}, FALSE) AS high
FROM (VALUES {skeleton}) AS sk(metric, score, k_low, k_high, method)
LEFT JOIN {CUTS} lo ON lo.metric = sk.metric AND lo.k = sk.k_low
LEFT JOIN {CUTS} hi ON hi.metric = sk.metric AND hi.k = sk.k_high
LEFT JOIN rfm_per_score n ON n.metric = sk.metric AND n.score = sk.score
"""
    return [
        SqlStep(scored, "rfm_scored"),
        SqlStep(per_score, "rfm_per_score"),
        SqlStep(out, CUTOFFS),
    ]


def _score_steps(rules: RfmRules, as_of: datetime) -> list[SqlStep]:
    cut_row = ",\n       ".join(
        f"max(CASE WHEN metric = '{m}' AND k = {k} THEN cutoff END) AS {col}"
        for m in RFM_METRICS
        for k, col in enumerate(_cut_columns(m), 1)
    )
    high_from = ",\n       ".join(
        f"min(CASE WHEN metric = '{m}' AND high THEN score END) AS {SCORE_LETTER[m]}_high_from"
        for m in RFM_METRICS
    )
    scores = f"""
SELECT v.one_id, v.recency_days, v.frequency, v.monetary_fen,
       {_score_sql("recency_days", "v.recency_days")} AS r_score,
       {_score_sql("frequency", "v.frequency")} AS f_score,
       {_score_sql("monetary_fen", "v.monetary_fen")} AS m_score
FROM {VALUES} v CROSS JOIN (SELECT {cut_row}
                            FROM {CUTS}) c
"""
    flag = {
        letter: f"coalesce(s.{letter}_score >= h.{letter}_high_from, FALSE)" for letter in "rfm"
    }
    segment = "\n".join(
        f"            WHEN {'' if r else 'NOT '}{flag['r']} AND {'' if f else 'NOT '}{flag['f']} "
        f"AND {'' if m else 'NOT '}{flag['m']} THEN '{key}'"
        for key, r, f, m in SEGMENTS
    )
    segmented = f"""
SELECT s.*, CASE
{segment}
       END AS rfm_segment
FROM rfm_scores s CROSS JOIN (SELECT {high_from}
                              FROM {CUTOFFS}) h
"""
    tier_of = "\n".join(
        f"            WHEN s.rfm_segment = '{seg}' THEN '{tier}'"
        for seg, tier in rules.tier_of_segment.items()
    )
    as_of_day = day_literal(as_of)
    out = f"""
SELECT m.one_id, s.recency_days, CAST(coalesce(s.frequency, 0) AS BIGINT) AS frequency,
       CAST(coalesce(s.monetary_fen, 0) AS BIGINT) AS monetary_fen,
       s.r_score, s.f_score, s.m_score, s.rfm_segment,
       CASE WHEN s.one_id IS NULL THEN
                CASE WHEN m.first_seen IS NULL
                       OR date_diff('day', {local_day("m.first_seen")}, {as_of_day})
                          > {rules.dormant_after_days}
                     THEN 'dormant' ELSE 'potential' END
            WHEN s.recency_days > {rules.dormant_after_days} THEN 'dormant'
{tier_of}
       END AS value_tier
FROM {MEMBERS} m LEFT JOIN rfm_segmented s ON s.one_id = m.one_id
"""
    return [
        SqlStep(scores, "rfm_scores"),
        SqlStep(segmented, "rfm_segmented"),
        SqlStep(out, OUTPUT),
    ]


def rfm_pipelines(config: LayeringConfig, as_of: datetime) -> list[tuple[list[SqlStep], str]]:
    """(steps, output table) to run in order: values, histogram, cut-offs, explained
    cut-offs, scores."""
    rules = config.rfm
    return [
        ([SqlStep(_values_sql(rules, as_of), VALUES)], VALUES),
        ([SqlStep(_hist_sql(), HIST)], HIST),
        ([SqlStep(_cuts_sql(rules), CUTS)], CUTS),
        (_cutoff_steps(rules), CUTOFFS),
        (_score_steps(rules, as_of), OUTPUT),
    ]


# --- explanation ----------------------------------------------------------------------------


def _bound_text(row: Mapping[str, Any]) -> str:
    low, high = row.get("lower_bound"), row.get("upper_bound")
    if low is None and high is None:
        return "any value"
    if low is None:
        return f"<= {_num(high)}"
    if high is None:
        return f"> {_num(low)}"
    return f"> {_num(low)} and <= {_num(high)}"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def explain_rfm(
    values_row: Mapping[str, Any],
    cutoffs_rows: Sequence[Mapping[str, Any]],
    config: LayeringConfig | None = None,
) -> dict[str, Any]:
    """Why a member has their R/F/M scores, RFM group and value tier.

    `values_row` is the member's ``cm_out_rfm`` (or ``scores``) row, `cutoffs_rows` the
    run's ``cm_out_rfm_cutoffs`` rows (kept in ``compute_runs.parameters``). Returns
    ``{"one_id", "scored", "metrics": [{metric, value, score, method, lower_bound,
    upper_bound, high, reason}], "segment": {key, zh, en} | None,
    "value_tier": {key, zh, en, reason}}``.
    """
    config = config or LayeringConfig.load()
    rules = config.rfm
    by_key = {(str(r["metric"]), int(r["score"])): r for r in cutoffs_rows}
    scored = values_row.get("r_score") is not None
    metrics = []
    for metric in RFM_METRICS:
        value = values_row.get(metric)
        score = values_row.get(f"{SCORE_LETTER[metric]}_score")
        row = by_key.get((metric, int(score))) if score is not None else None
        if row is None:
            metrics.append(
                {
                    "metric": metric,
                    "value": value,
                    "score": None,
                    "reason": "no paid order: not scored",
                }
            )
            continue
        unit = " days" if metric == "recency_days" else ""
        how = "quintile cut-offs" if row.get("method") == "quintile" else "fixed cut-offs"
        metrics.append(
            {
                "metric": metric,
                "value": value,
                "score": score,
                "method": row.get("method"),
                "lower_bound": row.get("lower_bound"),
                "upper_bound": row.get("upper_bound"),
                "high": bool(row.get("high")),
                "reason": (
                    f"{metric} = {_num(value)}{unit} is {_bound_text(row)} "
                    f"({how}), so {SCORE_LETTER[metric].upper()} score {score}"
                    f" ({'high' if row.get('high') else 'low'})"
                ),
            }
        )
    segment_key = values_row.get("rfm_segment")
    segment = None
    if segment_key:
        segment = {
            "key": segment_key,
            "zh": config.label("rfm_segment", segment_key),
            "en": config.label("rfm_segment", segment_key, "en"),
        }
    tier = values_row.get("value_tier")
    recency = values_row.get("recency_days")
    if not scored:
        tier_reason = (
            f"no paid order: dormant when first seen more than {rules.dormant_after_days} "
            "days ago, else potential"
        )
    elif recency is not None and recency > rules.dormant_after_days:
        tier_reason = f"no paid order in {recency} days (> {rules.dormant_after_days})"
    else:
        tier_reason = f"RFM group {segment_key} maps to {tier}"
    return {
        "one_id": values_row.get("one_id"),
        "scored": scored,
        "metrics": metrics,
        "segment": segment,
        "value_tier": {
            "key": tier,
            "zh": config.label("value_tier", tier) if tier else None,
            "en": config.label("value_tier", tier, "en") if tier else None,
            "reason": tier_reason,
        },
    }

"""The golden-record build in SQL through the engine seam (DuckDB dialect; runs on Spark too).

`build_steps` returns, per output table, the `SqlStep`s that compute it from the canonical
tables, OneID's ``identity_records`` / ``identity_oneid`` and three rule tables
(`TRAIT_RULES`, `TRAIT_PRIORITY`, `LEVELS`, from `ProfileRules`). Nothing here writes the
store: `mecdp.profiles.service` runs the steps and persists the outputs (full rebuild or
`refresh_profiles` for a few persons, the same SQL with a scope table).

Outputs (one pipeline each, reading the materialised `RECS` and `TIMELINE` steps):

* ``pf_out_traits``: the chosen value per (one_id, trait) with its source, time and rule;
* ``pf_out_identifiers``: the person's identifiers (OneID-linked only) with counts;
* ``pf_out_timeline``: every event, interaction, appointment, order, treatment, feedback;
* ``pf_out_cards``: 疗程卡 balances;
* ``pf_out_profiles``: the golden record with the derived basics.
"""

from __future__ import annotations

from mecdp.store.engine import Engine, SqlStep

TRAIT_RULES = "pf_rule_traits"
TRAIT_PRIORITY = "pf_rule_priority"
LEVELS = "pf_rule_levels"
SCOPE = "pf_scope"  # one_id: the persons a refresh covers
RECS = "pf_recs"
TIMELINE = "pf_out_timeline"
OUTPUTS = ("pf_out_traits", "pf_out_identifiers", "pf_out_cards", "pf_out_profiles")
INPUT_TABLES = (
    "identity_records",
    "identity_oneid",
    "contacts",
    "record_identifiers",
    "sources",
    "orders",
    "appointments",
    "treatments",
    "interactions",
    "feedback",
    "events",
)
# Orders in these states bring no spend.
VOID_ORDER_STATUSES = ("refunded", "cancelled", "canceled", "void")


def recs_sql(scoped: bool) -> str:
    """record_id -> one_id for the persons built (all, or those in `SCOPE`)."""
    if scoped:
        return f"SELECT r.record_id, r.one_id FROM identity_records r JOIN {SCOPE} s USING (one_id)"
    return "SELECT record_id, one_id FROM identity_records"


def _void() -> str:
    return ", ".join(f"'{s}'" for s in VOID_ORDER_STATUSES)


def timeline_steps() -> list[SqlStep]:
    """Every fact of the persons in `RECS` as one timeline row."""
    void = _void()
    sql = f"""
SELECT r.one_id, e.occurred_at, 'event' AS kind, e.type AS type,
       coalesce(e.channel, s.channel) AS channel, CAST(NULL AS VARCHAR) AS store_code,
       coalesce(e.event, e.type) AS title, CAST(NULL AS BIGINT) AS amount_fen,
       CAST(NULL AS INTEGER) AS score, FALSE AS sensitive, e.record_id, e.source_id
FROM events e JOIN {RECS} r ON r.record_id = e.record_id
LEFT JOIN sources s ON s.source_id = e.source_id
UNION ALL
SELECT r.one_id, i.occurred_at,
       CASE WHEN i.type = 'ticket' THEN 'ticket' ELSE 'interaction' END AS kind,
       i.type, i.channel, CAST(NULL AS VARCHAR), coalesce(i.topic, i.type),
       CAST(NULL AS BIGINT), CAST(NULL AS INTEGER), FALSE, i.record_id, i.source_id
FROM interactions i JOIN {RECS} r ON r.record_id = i.record_id
UNION ALL
SELECT r.one_id, coalesce(a.arrived_at, a.scheduled_at), 'appointment', a.status,
       coalesce(a.channel, s.channel), a.store_code, a.item_name, CAST(NULL AS BIGINT),
       CAST(NULL AS INTEGER), FALSE, a.record_id, a.source_id
FROM appointments a JOIN {RECS} r ON r.record_id = a.record_id
LEFT JOIN sources s ON s.source_id = a.source_id
UNION ALL
SELECT r.one_id, o.ordered_at, 'order', coalesce(o.order_type, 'normal'),
       coalesce(o.channel, s.channel), o.store_code, o.item_name,
       CASE WHEN coalesce(o.status, '') IN ({void}) THEN CAST(0 AS BIGINT)
            ELSE coalesce(o.paid_fen, o.amount_fen) END,
       CAST(NULL AS INTEGER), FALSE, o.record_id, o.source_id
FROM orders o JOIN {RECS} r ON r.record_id = o.record_id
LEFT JOIN sources s ON s.source_id = o.source_id
UNION ALL
SELECT r.one_id, t.performed_at, 'treatment', t.category, s.channel, t.store_code,
       t.item_name, CAST(NULL AS BIGINT), CAST(NULL AS INTEGER), TRUE, t.record_id,
       t.source_id
FROM treatments t JOIN {RECS} r ON r.record_id = t.record_id
LEFT JOIN sources s ON s.source_id = t.source_id
UNION ALL
SELECT r.one_id, f.submitted_at, 'feedback', f.survey, coalesce(f.channel, s.channel),
       f.store_code, f.survey, CAST(NULL AS BIGINT), CAST(f.score AS INTEGER), FALSE,
       f.record_id, f.source_id
FROM feedback f JOIN {RECS} r ON r.record_id = f.record_id
LEFT JOIN sources s ON s.source_id = f.source_id
"""
    return [SqlStep(sql, TIMELINE)]


def trait_steps(has_name_key: bool) -> list[SqlStep]:
    """Survivorship: one chosen value per (one_id, trait).

    Values compare by `value_key`: the name's blind index once names are encrypted (tokens
    of one name differ), else the value.
    """
    name_key = "coalesce(c.name_bidx, c.name)" if has_name_key else "c.name"
    cand = f"""
SELECT r.one_id, 'name' AS trait, c.name AS value, {name_key} AS value_key, c.source_id,
       c.record_id, c.record_kind, c.observed_at
FROM contacts c JOIN {RECS} r ON r.record_id = c.record_id WHERE c.name IS NOT NULL
UNION ALL
SELECT r.one_id, 'gender', c.gender, c.gender, c.source_id, c.record_id, c.record_kind,
       c.observed_at
FROM contacts c JOIN {RECS} r ON r.record_id = c.record_id WHERE c.gender IS NOT NULL
UNION ALL
SELECT r.one_id, 'birthday', CAST(c.birthday AS VARCHAR), CAST(c.birthday AS VARCHAR),
       c.source_id, c.record_id, c.record_kind, c.observed_at
FROM contacts c JOIN {RECS} r ON r.record_id = c.record_id WHERE c.birthday IS NOT NULL
UNION ALL
SELECT r.one_id, 'city', c.city, c.city, c.source_id, c.record_id, c.record_kind,
       c.observed_at
FROM contacts c JOIN {RECS} r ON r.record_id = c.record_id WHERE c.city IS NOT NULL
"""
    source_rank = f"""
SELECT k.trait, k.source_id, k.record_kind, min(p.rank) AS prio
FROM (SELECT DISTINCT trait, source_id, record_kind FROM pf_cand) k
LEFT JOIN sources s ON s.source_id = k.source_id
JOIN {TRAIT_PRIORITY} p ON p.trait = k.trait
 AND (p.source_key = k.source_id OR p.source_key = s.channel OR p.source_key = s.mapping
      OR p.source_key = k.record_kind)
GROUP BY k.trait, k.source_id, k.record_kind
"""
    ranked = f"""
SELECT c.one_id, c.trait, c.value, c.value_key, c.source_id, c.record_id, c.observed_at,
       tr.rule,
       count(*) OVER (PARTITION BY c.one_id, c.trait) AS candidates,
       row_number() OVER (
           PARTITION BY c.one_id, c.trait
           ORDER BY CASE WHEN tr.rule = 'source_priority' THEN coalesce(sr.prio, 1000000)
                         ELSE 0 END,
                    CASE WHEN tr.rule = 'most_frequent' THEN -c.freq ELSE 0 END,
                    c.observed_at DESC NULLS LAST, c.record_id) AS rn
FROM (SELECT pc.*, count(*) OVER (PARTITION BY one_id, trait, value_key) AS freq
      FROM pf_cand pc) c
JOIN {TRAIT_RULES} tr ON tr.trait = c.trait
LEFT JOIN pf_source_rank sr
  ON sr.trait = c.trait AND sr.source_id = c.source_id AND sr.record_kind = c.record_kind
"""
    out = """
SELECT one_id, trait, value, value_key, rule, source_id, record_id, observed_at, candidates
FROM pf_ranked WHERE rn = 1
"""
    return [
        SqlStep(cand, "pf_cand"),
        SqlStep(source_rank, "pf_source_rank"),
        SqlStep(ranked, "pf_ranked"),
        SqlStep(out, "pf_out_traits"),
    ]


def identifier_steps(has_enc: bool) -> list[SqlStep]:
    """The identifiers OneID links to each person (ambiguous and blocklisted ones left out)."""
    enc = "max(ri.id_value_enc)" if has_enc else "CAST(NULL AS VARCHAR)"
    sql = f"""
SELECT r.one_id, ri.id_type, ri.id_value, {enc} AS id_value_enc,
       count(*) AS records, min(ri.observed_at) AS first_seen,
       max(ri.observed_at) AS last_seen
FROM record_identifiers ri
JOIN {RECS} r ON r.record_id = ri.record_id
JOIN identity_oneid o
  ON o.id_type = ri.id_type AND o.id_value = ri.id_value AND o.one_id = r.one_id
GROUP BY r.one_id, ri.id_type, ri.id_value
"""
    return [SqlStep(sql, "pf_out_identifiers")]


def card_steps() -> list[SqlStep]:
    """疗程卡: sessions bought per item minus treatments of the item after the first purchase."""
    void = _void()
    bought = f"""
SELECT r.one_id, o.item_code, max(o.item_name) AS item_name,
       CAST(sum(coalesce(o.sessions, 0) * coalesce(o.quantity, 1)) AS BIGINT) AS sessions_bought,
       min(o.ordered_at) AS first_purchase_at, max(o.ordered_at) AS last_purchase_at
FROM orders o JOIN {RECS} r ON r.record_id = o.record_id
WHERE o.order_type = 'course_card' AND o.item_code IS NOT NULL
  AND coalesce(o.status, '') NOT IN ({void})
GROUP BY r.one_id, o.item_code
"""
    out = f"""
SELECT b.one_id, b.item_code, b.item_name, b.sessions_bought,
       CAST(count(t.record_id) AS BIGINT) AS sessions_used,
       CAST(greatest(b.sessions_bought - count(t.record_id), 0) AS BIGINT) AS sessions_left,
       b.first_purchase_at, b.last_purchase_at
FROM pf_bought b
LEFT JOIN (SELECT tr.record_id, tr.item_code, r.one_id, tr.performed_at
           FROM treatments tr JOIN {RECS} r ON r.record_id = tr.record_id) t
  ON t.one_id = b.one_id AND t.item_code = b.item_code
 AND t.performed_at >= b.first_purchase_at
GROUP BY b.one_id, b.item_code, b.item_name, b.sessions_bought, b.first_purchase_at,
         b.last_purchase_at
"""
    return [SqlStep(bought, "pf_bought"), SqlStep(out, "pf_out_cards")]


def profile_steps() -> list[SqlStep]:
    """The golden record: chosen traits pivoted, plus the derived basics."""
    void = _void()
    persons = f"SELECT DISTINCT one_id FROM {RECS}"
    orders = f"""
SELECT r.one_id, count(DISTINCT o.order_no) AS orders,
       min(o.ordered_at) AS first_order_at, max(o.ordered_at) AS last_order_at,
       CAST(sum(CASE WHEN coalesce(o.status, '') IN ({void}) THEN 0
                     ELSE coalesce(o.paid_fen, o.amount_fen) END) AS BIGINT) AS total_spend_fen
FROM orders o JOIN {RECS} r ON r.record_id = o.record_id
GROUP BY r.one_id
"""
    visits = f"""
SELECT one_id, CAST(sum(CASE WHEN kind = 'appointment' AND type = 'arrived' THEN 1 ELSE 0 END)
                    AS BIGINT) AS visits,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
FROM {TIMELINE}
WHERE kind <> 'appointment' OR type = 'arrived'
GROUP BY one_id
"""
    contact_seen = f"""
SELECT r.one_id, min(c.observed_at) AS first_seen, max(c.observed_at) AS last_seen,
       count(*) AS contact_records
FROM contacts c JOIN {RECS} r ON r.record_id = c.record_id
GROUP BY r.one_id
"""
    record_count = f"SELECT one_id, count(*) AS records FROM {RECS} GROUP BY one_id"
    store_touch = f"""
SELECT one_id, store_code,
       CASE WHEN kind = 'appointment' AND type = 'arrived' THEN 1 ELSE 0 END AS is_visit,
       occurred_at AS touched_at
FROM {TIMELINE} WHERE store_code IS NOT NULL
UNION ALL
SELECT r.one_id, c.store_code, 0, c.observed_at
FROM contacts c JOIN {RECS} r ON r.record_id = c.record_id WHERE c.store_code IS NOT NULL
"""
    home = """
SELECT one_id, store_code FROM (
    SELECT one_id, store_code,
           row_number() OVER (PARTITION BY one_id
                              ORDER BY sum(is_visit) DESC, count(*) DESC,
                                       max(touched_at) DESC NULLS LAST, store_code) AS rn
    FROM pf_store_touch GROUP BY one_id, store_code) x
WHERE rn = 1
"""
    consultant = f"""
SELECT one_id, consultant FROM (
    SELECT r.one_id, a.consultant,
           row_number() OVER (PARTITION BY r.one_id
                              ORDER BY CASE WHEN a.status = 'arrived' THEN 0 ELSE 1 END,
                                       coalesce(a.arrived_at, a.scheduled_at) DESC,
                                       a.record_id) AS rn
    FROM appointments a JOIN {RECS} r ON r.record_id = a.record_id
    WHERE a.consultant IS NOT NULL) x
WHERE rn = 1
"""
    channel = f"""
SELECT one_id, channel FROM (
    SELECT one_id, channel,
           row_number() OVER (PARTITION BY one_id
                              ORDER BY count(*) DESC, max(occurred_at) DESC, channel) AS rn
    FROM {TIMELINE} WHERE channel IS NOT NULL AND NOT sensitive
    GROUP BY one_id, channel) x
WHERE rn = 1
"""
    pivot = """
SELECT one_id,
       max(CASE WHEN trait = 'name' THEN value END) AS name,
       max(CASE WHEN trait = 'name' THEN value_key END) AS name_key,
       max(CASE WHEN trait = 'gender' THEN value END) AS gender,
       max(CASE WHEN trait = 'birthday' THEN value END) AS birthday,
       max(CASE WHEN trait = 'city' THEN value END) AS city
FROM pf_out_traits GROUP BY one_id
"""
    joined = """
SELECT p.one_id, t.name, t.name_key, t.gender, CAST(t.birthday AS DATE) AS birthday, t.city,
       h.store_code AS home_store, c.consultant, ch.channel AS preferred_channel,
       CASE WHEN cs.first_seen IS NULL THEN v.first_seen
            WHEN v.first_seen IS NULL OR cs.first_seen < v.first_seen THEN cs.first_seen
            ELSE v.first_seen END AS first_seen,
       CASE WHEN cs.last_seen IS NULL THEN v.last_seen
            WHEN v.last_seen IS NULL OR cs.last_seen > v.last_seen THEN cs.last_seen
            ELSE v.last_seen END AS last_seen,
       o.first_order_at, o.last_order_at,
       coalesce(o.orders, 0) AS orders, coalesce(v.visits, 0) AS visits,
       coalesce(o.total_spend_fen, 0) AS total_spend_fen,
       CASE WHEN coalesce(o.orders, 0) = 0 THEN CAST(NULL AS BIGINT)
            ELSE CAST(floor((2 * o.total_spend_fen + o.orders) / (2 * o.orders)) AS BIGINT)
       END AS avg_spend_fen,
       rc.records
FROM pf_persons p
LEFT JOIN pf_pivot t ON t.one_id = p.one_id
LEFT JOIN pf_orders o ON o.one_id = p.one_id
LEFT JOIN pf_visits v ON v.one_id = p.one_id
LEFT JOIN pf_contact_seen cs ON cs.one_id = p.one_id
LEFT JOIN pf_home h ON h.one_id = p.one_id
LEFT JOIN pf_consultant c ON c.one_id = p.one_id
LEFT JOIN pf_channel ch ON ch.one_id = p.one_id
LEFT JOIN pf_record_count rc ON rc.one_id = p.one_id
"""
    out = f"""
SELECT j.*, lv.level AS member_level
FROM pf_joined j
LEFT JOIN (
    SELECT one_id, level FROM (
        SELECT j2.one_id, l.level,
               row_number() OVER (PARTITION BY j2.one_id ORDER BY l.min_spend_fen DESC) AS rn
        FROM pf_joined j2 JOIN {LEVELS} l ON j2.total_spend_fen >= l.min_spend_fen) x
    WHERE rn = 1) lv ON lv.one_id = j.one_id
"""
    return [
        SqlStep(persons, "pf_persons"),
        SqlStep(orders, "pf_orders"),
        SqlStep(visits, "pf_visits"),
        SqlStep(contact_seen, "pf_contact_seen"),
        SqlStep(record_count, "pf_record_count"),
        SqlStep(store_touch, "pf_store_touch"),
        SqlStep(home, "pf_home"),
        SqlStep(consultant, "pf_consultant"),
        SqlStep(channel, "pf_channel"),
        SqlStep(pivot, "pf_pivot"),
        SqlStep(joined, "pf_joined"),
        SqlStep(out, "pf_out_profiles"),
    ]


def run_build(engine: Engine, *, scoped: bool) -> None:
    """Compute every output table on `engine` (inputs and rule tables already readable)."""
    engine.create_table_as(RECS, recs_sql(scoped))
    engine.run_pipeline(timeline_steps(), TIMELINE)
    has_name_key = "name_bidx" in engine.columns("contacts")
    engine.run_pipeline(trait_steps(has_name_key), "pf_out_traits")
    has_enc = "id_value_enc" in engine.columns("record_identifiers")
    engine.run_pipeline(identifier_steps(has_enc), "pf_out_identifiers")
    engine.run_pipeline(card_steps(), "pf_out_cards")
    engine.run_pipeline(profile_steps(), "pf_out_profiles")


def drop_outputs(engine: Engine) -> None:
    for name in (RECS, TIMELINE, *OUTPUTS):
        engine.drop(name)

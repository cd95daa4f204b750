"""The profile lookup hot path: one precomputed document per person, read in one statement.

A DuckDB statement costs far more to parse, plan and run than a Python step, and an ART
index serves a point read only for an equality on one indexed column (see migration 0007).
So ``GET /v1/profiles/{ref}`` reads everything it shows in one statement of uncorrelated
scalar subqueries, each an indexed single-column read with the person's key as a constant:

* ``profile_documents``: the stored part of the 360° view as JSON (golden record with the
  home store's name, traits, identifiers, course cards, merged one_ids), written by the full
  build and by `refresh_profiles` in the same transaction as the tables it is made from
  (`write_documents`), so it is as current as they are;
* the live parts other areas write at any time: the consent ledger (a change shows on the
  next read), the member's tags with their zh/en names and since when, the scores row, and
  (only when the caller may see sensitive medical data) the treatment due dates.

Values come back as stored (a name is a token once encrypted, phones are blind index plus
token); `mecdp.profiles.service` reveals and masks them. Times are ISO 8601 UTC with ``Z``,
as `service._iso` writes them, so a view read here equals one assembled table by table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

DOCUMENTS = "profile_documents"
DOCUMENTS_INDEX = "profile_documents_one_id"


def iso_sql(column: str) -> str:
    """SQL: a TIMESTAMP as ``2024-01-01T10:00:00Z`` (``.123456`` only when it has micros)."""
    micros = f"((epoch_us({column}) % 1000000 + 1000000) % 1000000)"
    return (
        f"(strftime({column}, '%Y-%m-%dT%H:%M:%S') || CASE WHEN {micros} = 0 THEN '' "
        f"ELSE '.' || lpad(CAST({micros} AS VARCHAR), 6, '0') END || 'Z')"
    )


def _json_list(row_struct: str, order_by: str, table: str, where: str) -> str:
    """SQL: per one_id, the rows of `table` as a JSON array text (ordered)."""
    return (
        f"SELECT one_id, '[' || string_agg(CAST(to_json({row_struct}) AS VARCHAR), ',' "
        f"ORDER BY {order_by}) || ']' AS items FROM {table} WHERE {where} GROUP BY one_id"
    )


def document_sql(where: str) -> str:
    """SELECT one_id, document, built_at for the persons whose one_id passes `where` (a
    condition on a column named ``one_id``, e.g. ``TRUE`` or ``one_id = $1``)."""
    traits = _json_list(
        "struct_pack(trait, value, rule, source_id, record_id, "
        f"observed_at := {iso_sql('observed_at')}, candidates)",
        "trait",
        "profile_traits",
        where,
    )
    identifiers = _json_list(
        "struct_pack(id_type, id_value, id_value_enc, records, "
        f"first_seen := {iso_sql('first_seen')}, last_seen := {iso_sql('last_seen')})",
        "id_type, records DESC, last_seen DESC NULLS LAST, id_value",
        "profile_identifiers",
        where,
    )
    cards = _json_list(
        "struct_pack(item_code, item_name, sessions_bought, sessions_used, sessions_left, "
        f"first_purchase_at := {iso_sql('first_purchase_at')}, "
        f"last_purchase_at := {iso_sql('last_purchase_at')})",
        "last_purchase_at DESC, item_code",
        "profile_course_cards",
        where,
    )
    merged = (
        "SELECT to_one_id AS one_id, CAST(to_json(list(from_one_id ORDER BY from_one_id)) "
        f"AS VARCHAR) AS items FROM (SELECT from_one_id, to_one_id AS one_id, to_one_id "
        f"FROM identity_redirects) r WHERE {where} GROUP BY to_one_id"
    )
    times = ("first_seen", "last_seen", "first_order_at", "last_order_at", "built_at")
    profile = (
        "struct_pack(p.one_id, p.name, p.gender, birthday := strftime(p.birthday, '%Y-%m-%d'), "
        "p.city, p.home_store, home_store_name := s.name, p.consultant, p.member_level, "
        "p.preferred_channel, "
        + ", ".join(f"{t} := {iso_sql('p.' + t)}" for t in times)
        + ", p.orders, p.visits, p.total_spend_fen, p.avg_spend_fen, p.records)"
    )
    return f"""
WITH pd_traits AS ({traits}),
     pd_identifiers AS ({identifiers}),
     pd_cards AS ({cards}),
     pd_merged AS ({merged})
SELECT p.one_id,
       '{{"profile":' || CAST(to_json({profile}) AS VARCHAR)
       || ',"traits":' || coalesce(t.items, '[]')
       || ',"identifiers":' || coalesce(i.items, '[]')
       || ',"course_cards":' || coalesce(c.items, '[]')
       || ',"merged_from":' || coalesce(m.items, '[]') || '}}' AS document,
       p.built_at
FROM (SELECT * FROM profiles WHERE {where}) p
LEFT JOIN stores s ON s.store_code = p.home_store
LEFT JOIN pd_traits t ON t.one_id = p.one_id
LEFT JOIN pd_identifiers i ON i.one_id = p.one_id
LEFT JOIN pd_cards c ON c.one_id = p.one_id
LEFT JOIN pd_merged m ON m.one_id = p.one_id
"""


def write_documents(cur: duckdb.DuckDBPyConnection, scope: str | None) -> int:
    """(Re)write the documents of every person, or of those whose one_id is in the table
    `scope` (merged-away ones lose theirs). Run after the profile tables are written, in the
    same transaction. Returns the number of documents written."""
    if scope is None:
        # a full rewrite: the index is rebuilt once instead of maintained row by row
        cur.execute(f"DROP INDEX IF EXISTS {DOCUMENTS_INDEX}")
        cur.execute(f"DELETE FROM {DOCUMENTS}")
        cur.execute(f"INSERT INTO {DOCUMENTS} {document_sql('TRUE')}")
        cur.execute(f"CREATE INDEX {DOCUMENTS_INDEX} ON {DOCUMENTS} (one_id)")
    else:
        in_scope = f"one_id IN (SELECT one_id FROM {scope})"
        cur.execute(f"DELETE FROM {DOCUMENTS} WHERE {in_scope}")
        cur.execute(f"INSERT INTO {DOCUMENTS} {document_sql(in_scope)}")
    row = cur.execute(
        f"SELECT count(*) FROM {DOCUMENTS}"
        + ("" if scope is None else f" WHERE one_id IN (SELECT one_id FROM {scope})")
    ).fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- the read

_TAGS = f"""
SELECT '[' || string_agg(CAST(to_json(struct_pack(
           t.tag_id, d.name_zh, d.name_en, d.category, d.value_type, t.value,
           since := {iso_sql("coalesce(h.since, t.computed_at)")})) AS VARCHAR), ','
       ORDER BY d.category NULLS LAST, t.tag_id) || ']'
FROM customer_tags t
LEFT JOIN tag_definitions d ON d.tag_id = t.tag_id
LEFT JOIN (SELECT tag_id, max(changed_at) AS since FROM customer_tag_history
           WHERE one_id = $1 AND change <> 'lost' GROUP BY tag_id) h ON h.tag_id = t.tag_id
WHERE t.one_id = $1
"""
_SCORES = f"""
SELECT CAST(to_json(struct_pack(
           as_of := {iso_sql("as_of")}, recency_days, frequency, monetary_fen, r_score, f_score,
           m_score, rfm_segment, value_tier, p_alive, expected_purchases_90,
           expected_purchases_180, expected_purchases_365, expected_value_365_fen, clv_12m_fen,
           purchase_tier, interaction_tier, interaction_channels, interactions_90d,
           preferred_category)) AS VARCHAR)
FROM scores WHERE one_id = $1
"""
_DUE = f"""
SELECT '[' || coalesce(string_agg(CAST(to_json(struct_pack(
           item_code, item_name, category, last_performed_at := {iso_sql("last_performed_at")},
           cycle_days, due_on := strftime(due_on, '%Y-%m-%d'), status)) AS VARCHAR), ','
       ORDER BY due_on, item_code), '') || ']'
FROM treatment_due WHERE one_id = $1 AND $3
"""
_CONSENT_COLUMNS = (
    "consent_id, seq, member_ref, purpose, channel, status, notice_version, notice_sha256, "
    "source, evidence, occurred_at, recorded_at, recorded_by"
)
# the latest event per purpose and channel, as `mecdp.privacy.consent.current_consents`
_CONSENTS = f"""
SELECT list(c ORDER BY c.purpose, c.channel) FROM (
    SELECT {_CONSENT_COLUMNS} FROM consents WHERE member_ref = $2
    QUALIFY row_number() OVER (PARTITION BY purpose, channel
                               ORDER BY occurred_at DESC, seq DESC) = 1) c
"""
READ_SQL = f"""
SELECT (SELECT document FROM {DOCUMENTS} WHERE one_id = $1),
       ({_CONSENTS}), ({_TAGS}), ({_SCORES}), ({_DUE})
"""
LIVE_DOCUMENT_SQL = f"SELECT document FROM ({document_sql('one_id = $1')})"


@dataclass(frozen=True)
class ViewParts:
    """What one lookup reads: the stored document and the live parts (as stored)."""

    document: dict[str, Any] | None  # None: the person has no profile (yet)
    consents: list[dict[str, Any]]  # current state per purpose and channel (ledger rows)
    tags: list[dict[str, Any]]
    scores: dict[str, Any] | None
    treatment_due: list[dict[str, Any]] | None  # None unless asked for


def read_parts(
    cur: duckdb.DuckDBPyConnection, one_id: str, member_ref: str, *, due: bool
) -> ViewParts:
    """Everything the 360° view of `one_id` shows, in one statement (a person built before
    the documents existed is read from the profile tables instead)."""
    row = cur.execute(READ_SQL, [one_id, member_ref, due]).fetchone()
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    document, consents, tags, scores, due_rows = row
    if document is None:
        live = cur.execute(LIVE_DOCUMENT_SQL, [one_id]).fetchone()
        document = live[0] if live else None
    return ViewParts(
        document=orjson.loads(document) if document is not None else None,
        consents=list(consents or ()),
        tags=orjson.loads(tags) if tags else [],
        scores=orjson.loads(scores) if scores else None,
        treatment_due=orjson.loads(due_rows) if due else None,
    )

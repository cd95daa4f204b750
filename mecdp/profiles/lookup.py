"""The profile lookup hot path: one precomputed document per person, read in one statement.

A DuckDB statement costs far more to parse, plan and run than a Python step, and an ART
index serves a point read only for an equality on one indexed column (see migration 0007).
So ``GET /v1/profiles/{ref}`` reads everything it shows in one statement: a UNION ALL of one
branch per part, each an indexed single-column point read with the person's key as a
parameter, returning the part's rows as JSON text:

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
from datetime import datetime
from typing import Any

import duckdb
import orjson

from mecdp.profiles import serving
from mecdp.store.duckdb_store import replace_table

DOCUMENTS = "profile_documents"


def iso_sql(column: str) -> str:
    """SQL: a TIMESTAMP as ``2024-01-01T10:00:00Z`` (``.123456`` only when it has micros)."""
    micros = f"((epoch_us({column}) % 1000000 + 1000000) % 1000000)"
    return (
        f"(strftime({column}, '%Y-%m-%dT%H:%M:%S') || CASE WHEN {micros} = 0 THEN '' "
        f"ELSE '.' || lpad(CAST({micros} AS VARCHAR), 6, '0') END || 'Z')"
    )


def _json_list(row_struct: str, table: str, where: str) -> str:
    """SQL: per one_id, the rows of `table` as a JSON array text, in no particular order (an
    ordered aggregate makes the full build ten times slower; `order_document` orders the few
    items of one person on the way out)."""
    return (
        f"SELECT one_id, '[' || string_agg(CAST(to_json({row_struct}) AS VARCHAR), ',') "
        f"|| ']' AS items FROM {table} WHERE {where} GROUP BY one_id"
    )


@dataclass(frozen=True)
class DocumentSources:
    """Where a document's parts come from: the profile tables, or (`refresh_profiles`, the
    full build) the build's outputs of the persons just built, which spares the stream path a
    scan of the profile tables per batch."""

    profiles: str = "profiles"
    traits: str = "profile_traits"
    identifiers: str = "profile_identifiers"
    cards: str = "profile_course_cards"
    built_at: str = "p.built_at"  # SQL: when the golden record was built


PROFILE_TABLES = DocumentSources()


def document_sql(where: str, sources: DocumentSources = PROFILE_TABLES) -> str:
    """SELECT one_id, document, built_at for the persons whose one_id passes `where` (a
    condition on a column named ``one_id``, e.g. ``TRUE`` or ``one_id = $1``)."""
    traits = _json_list(
        "struct_pack(trait, value, rule, source_id, record_id, "
        f"observed_at := {iso_sql('observed_at')}, candidates)",
        sources.traits,
        where,
    )
    identifiers = _json_list(
        "struct_pack(id_type, id_value, id_value_enc, records, "
        f"first_seen := {iso_sql('first_seen')}, last_seen := {iso_sql('last_seen')})",
        sources.identifiers,
        where,
    )
    cards = _json_list(
        "struct_pack(item_code, item_name, sessions_bought, sessions_used, sessions_left, "
        f"first_purchase_at := {iso_sql('first_purchase_at')}, "
        f"last_purchase_at := {iso_sql('last_purchase_at')})",
        sources.cards,
        where,
    )
    merged = (
        "SELECT one_id, CAST(to_json(list(from_one_id ORDER BY from_one_id)) AS VARCHAR) "
        "AS items FROM (SELECT from_one_id, to_one_id AS one_id FROM identity_redirects) r "
        f"WHERE {where} GROUP BY one_id"
    )
    times = ("first_seen", "last_seen", "first_order_at", "last_order_at")
    profile = (
        "struct_pack(p.one_id, p.name, p.gender, birthday := strftime(p.birthday, '%Y-%m-%d'), "
        "p.city, p.home_store, home_store_name := s.name, p.consultant, p.member_level, "
        "p.preferred_channel, "
        + ", ".join(f"{t} := {iso_sql('p.' + t)}" for t in times)
        + f", built_at := {iso_sql(sources.built_at)}"
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
       {sources.built_at} AS built_at
FROM (SELECT * FROM {sources.profiles} WHERE {where}) p
LEFT JOIN stores s ON s.store_code = p.home_store
LEFT JOIN pd_traits t ON t.one_id = p.one_id
LEFT JOIN pd_identifiers i ON i.one_id = p.one_id
LEFT JOIN pd_cards c ON c.one_id = p.one_id
LEFT JOIN pd_merged m ON m.one_id = p.one_id
"""


def write_documents(
    cur: duckdb.DuckDBPyConnection,
    scope: str | None,
    sources: DocumentSources = PROFILE_TABLES,
) -> int:
    """(Re)write the documents of every person, or of those whose one_id is in the table
    `scope` (merged-away ones lose theirs), from `sources`. Run after the profile tables are
    written, in the same transaction. Returns the number of documents written."""
    if scope is None:
        # deleting a million rows makes DuckDB's commit take minutes: swap in a fresh table
        replace_table(cur, DOCUMENTS, document_sql("TRUE", sources))
        row = cur.execute(f"SELECT count(*) FROM {DOCUMENTS}").fetchone()
        serving.changed(cur, serving.ALL)
    else:
        in_scope = f"one_id IN (SELECT one_id FROM {scope})"
        cur.execute(f"DELETE FROM {DOCUMENTS} WHERE {in_scope}")
        cur.execute(f"INSERT INTO {DOCUMENTS} {document_sql(in_scope, sources)}")
        row = cur.execute(f"SELECT count(*) FROM {DOCUMENTS} WHERE {in_scope}").fetchone()
        _scope_changed(cur, scope, sources)
    return int(row[0]) if row else 0


def _scope_changed(cur: duckdb.DuckDBPyConnection, scope: str, sources: DocumentSources) -> None:
    """Tell the serving cache: the persons of `scope` changed, and so did the resolution of
    every identifier they hold now (one may have become shared with another person)."""
    if not serving.active():
        return
    persons = [str(r[0]) for r in cur.execute(f"SELECT one_id FROM {scope}").fetchall()]
    values = cur.execute(
        f"SELECT DISTINCT id_value FROM {sources.identifiers} "
        f"WHERE one_id IN (SELECT one_id FROM {scope})"
    ).fetchall()
    serving.changed(
        cur,
        [
            *(serving.one_id_name(p) for p in persons),
            *(serving.id_value_name(str(v[0])) for v in values),
        ],
    )


# --------------------------------------------------------------------------- the read

# One statement, one branch per part, each an indexed single-column point read returning
# (part, JSON text). Measured on the 2-core machine, a UNION ALL of plain branches costs
# about half of the same reads as scalar subqueries, and formatting values in SQL (ISO times,
# ordered aggregates) costs more than the reads: times are formatted in Python.
_BRANCHES = {
    "document": f"SELECT 'document' AS part, document AS item FROM {DOCUMENTS} WHERE one_id = $1",
    "consent": """
SELECT 'consent', CAST(to_json(struct_pack(consent_id, seq, member_ref, purpose, channel,
       status, notice_version, notice_sha256, source, evidence, occurred_at, recorded_at,
       recorded_by)) AS VARCHAR)
FROM consents WHERE member_ref = $2""",
    # computed_at: when the member got this value (a compute run writes only changes)
    "tag": """
SELECT 'tag', CAST(to_json(struct_pack(t.tag_id, d.name_zh, d.name_en, d.category,
       d.value_type, t.value, since := t.computed_at)) AS VARCHAR)
FROM customer_tags t LEFT JOIN tag_definitions d ON d.tag_id = t.tag_id WHERE t.one_id = $1""",
    "scores": """
SELECT 'scores', CAST(to_json(struct_pack(as_of, recency_days, frequency, monetary_fen,
       r_score, f_score, m_score, rfm_segment, value_tier, p_alive, expected_purchases_90,
       expected_purchases_180, expected_purchases_365, expected_value_365_fen, clv_12m_fen,
       purchase_tier, interaction_tier, interaction_channels, interactions_90d,
       preferred_category)) AS VARCHAR)
FROM scores WHERE one_id = $1""",
    "due": """
SELECT 'due', CAST(to_json(struct_pack(item_code, item_name, category, last_performed_at,
       cycle_days, due_on, status)) AS VARCHAR)
FROM treatment_due WHERE one_id = $1""",
}
# parameters: $1 one_id, $2 member_ref; the due dates only for a caller who may see them
READ_SQL = "\nUNION ALL\n".join(v for k, v in _BRANCHES.items() if k != "due")
READ_WITH_DUE_SQL = "\nUNION ALL\n".join(_BRANCHES.values())
LIVE_DOCUMENT_SQL = f"SELECT document FROM ({document_sql('one_id = $1')})"


def _time_key(value: str | None) -> datetime:
    """An ISO time with Z as a sort key (text order puts 10:00:00Z after 10:00:00.5Z)."""
    return datetime.fromisoformat(value[:-1]) if value else datetime.min


def order_document(document: dict[str, Any]) -> dict[str, Any]:
    """Order a document's lists as the view shows them: traits by name; identifiers by
    type, then most used, most recently seen, value; course cards latest purchase first."""
    document["traits"].sort(key=lambda t: t["trait"])
    identifiers = document["identifiers"]
    identifiers.sort(key=lambda i: i["id_value"])
    identifiers.sort(key=lambda i: _time_key(i["last_seen"]), reverse=True)  # NULLs last
    identifiers.sort(key=lambda i: (i["id_type"], -i["records"]))
    cards = document["course_cards"]
    cards.sort(key=lambda c: c["item_code"])
    cards.sort(key=lambda c: _time_key(c["last_purchase_at"]), reverse=True)
    return document


def iso_text(value: str | None) -> str | None:
    """DuckDB's JSON text of a TIMESTAMP (``2024-01-01 10:00:00.5``) as the API writes
    times (``2024-01-01T10:00:00.500000Z``)."""
    if value is None:
        return None
    return datetime.fromisoformat(value).isoformat() + "Z"


@dataclass(frozen=True)
class ViewParts:
    """What one lookup reads: the stored document and the live parts, values as stored."""

    document: dict[str, Any] | None  # None: the person has no profile (yet)
    consents: list[dict[str, Any]]  # the latest event per purpose and channel
    tags: list[dict[str, Any]]  # by category, then tag_id
    scores: dict[str, Any] | None
    treatment_due: list[dict[str, Any]] | None  # by due date; None unless asked for


def _latest_consents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The member's current state per purpose and channel: the latest event by occurred_at,
    then seq (as `mecdp.privacy.consent.current_consents`), ordered by purpose, channel."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: (e["occurred_at"], e["seq"])):
        latest[(event["purpose"], event["channel"])] = event
    out = []
    for key in sorted(latest):
        event = latest[key]
        out.append(
            {
                **event,
                "occurred_at": iso_text(event["occurred_at"]),
                "recorded_at": iso_text(event["recorded_at"]),
            }
        )
    return out


def _tags(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Current tags by category (none last), then tag_id, with since as an ISO time."""
    for t in tags:
        t["since"] = iso_text(t["since"])
    return sorted(tags, key=lambda t: (t["category"] is None, t["category"] or "", t["tag_id"]))


def read_parts(
    cur: duckdb.DuckDBPyConnection, one_id: str, member_ref: str, *, due: bool
) -> ViewParts:
    """Everything the 360° view of `one_id` shows, in one statement (a person built before
    the documents existed is read from the profile tables instead)."""
    rows = cur.execute(READ_WITH_DUE_SQL if due else READ_SQL, [one_id, member_ref]).fetchall()
    found: dict[str, list[Any]] = {}
    for part, item in rows:
        found.setdefault(part, []).append(item)
    document = (found.get("document") or [None])[0]
    if document is None:
        live = cur.execute(LIVE_DOCUMENT_SQL, [one_id]).fetchone()
        document = live[0] if live else None
    scores = orjson.loads(found["scores"][0]) if "scores" in found else None
    if scores is not None:
        scores["as_of"] = iso_text(scores["as_of"])
    due_rows = None
    if due:
        due_rows = sorted(
            (orjson.loads(d) for d in found.get("due", ())),
            key=lambda d: (d["due_on"], d["item_code"]),
        )
        for d in due_rows:
            d["last_performed_at"] = iso_text(d["last_performed_at"])
    return ViewParts(
        document=order_document(orjson.loads(document)) if document is not None else None,
        consents=_latest_consents([orjson.loads(c) for c in found.get("consent", ())]),
        tags=_tags([orjson.loads(t) for t in found.get("tag", ())]),
        scores=scores,
        treatment_due=due_rows,
    )

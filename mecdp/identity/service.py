"""OneID service: full rebuild, stable one_ids, lookups, explain, split, review, stitching.

The graph itself is computed by `mecdp.identity.graph` (engine seam); this module prepares its
inputs from the store, keeps one_ids stable across rebuilds and writes the history:

* **Stable ids.** After each rebuild a component keeps the one_id its records had before.
  When several old persons end up in one component, the *oldest* one_id (smallest issue
  number) survives and the others get a row in `identity_redirects`; when a person is split,
  the part holding most of its records keeps the id and the rest get new ids. Events and
  facts are never rewritten: they are found through record_id -> `identity_records`.
* **History.** Every merge and split of existing persons is an `identity_events` row with its
  evidence (the identifiers and records the persons now share, or the match weight).
* **Nothing lost.** Manual splits and blocklisting are `identity_overrides` rows replayed on
  every rebuild; `record_identifiers` is never touched.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mecdp.errors import Conflict, InputError, NotFound
from mecdp.identity import graph
from mecdp.identity.config import MATCH_TYPE, IdentityRules
from mecdp.identity.models import Resolution, ResolveReport, StitchResult
from mecdp.identity.plain import (
    ENCRYPTED_TYPES,
    IDENTIFIER_CONTEXT,
    PlainValues,
    identifiers_encrypted,
    plain_identifier_sql,
)
from mecdp.privacy.audit import AuditEntry, append_audit
from mecdp.store import Store
from mecdp.store.duckdb_store import replace_table
from mecdp.store.engine import DuckDBEngine, Engine

Progress = Callable[[str], None]
ONE_ID_PREFIX = "OID"
_NEW_PERSON = "~new:"  # placeholder one_id of a person created while stitching a batch
_NEW_SEQ = 1 << 61
SYSTEM = "system"


def _noop(_: str) -> None:
    return None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def one_id_of(seq: int) -> str:
    """The one_id issued as number `seq` (OID00000042)."""
    return f"{ONE_ID_PREFIX}{seq:08d}"


def member_ref(one_id: str) -> str:
    """How the audit log and the consent ledger name a person."""
    return f"one_id:{one_id}"


# --------------------------------------------------------------------------- graph inputs

_BLOCKLIST_SCHEMA = pa.schema(
    [("id_type", pa.string()), ("value", pa.string()), ("pattern", pa.string())]
)
_TYPES_SCHEMA = pa.schema(
    [
        ("id_type", pa.string()),
        ("priority", pa.int64()),
        ("max_values", pa.int64()),
        ("is_unique", pa.bool_()),
    ]
)

EDGES_SQL = f"""
SELECT ri.record_id, ri.id_type, ri.id_value, ri.source_id, ri.observed_at
FROM record_identifiers ri
WHERE NOT EXISTS (
    SELECT 1 FROM identity_overrides o
    WHERE o.action = 'remove_edge' AND o.record_id = ri.record_id
      AND o.id_type = ri.id_type AND o.id_value = ri.id_value)
  AND NOT EXISTS (
    SELECT 1 FROM identity_overrides o
    WHERE o.action = 'remove_identifier' AND o.id_type = ri.id_type AND o.id_value = ri.id_value)
UNION ALL
SELECT record_id_l AS record_id, '{MATCH_TYPE}' AS id_type, pair_id AS id_value,
       CAST(NULL AS VARCHAR) AS source_id, CAST(NULL AS TIMESTAMP) AS observed_at
FROM identity_match_pairs WHERE status IN ('auto', 'approved')
UNION ALL
SELECT record_id_r AS record_id, '{MATCH_TYPE}' AS id_type, pair_id AS id_value,
       CAST(NULL AS VARCHAR) AS source_id, CAST(NULL AS TIMESTAMP) AS observed_at
FROM identity_match_pairs WHERE status IN ('auto', 'approved')
"""

BDAYS_SQL = """
SELECT record_id,
       CAST(birthday - DATE '1970-01-01' AS BIGINT) AS bday_days,
       CAST(year(birthday) AS BIGINT) AS bday_y,
       CAST(month(birthday) AS BIGINT) AS bday_m,
       CAST(day(birthday) AS BIGINT) AS bday_d
FROM contacts WHERE birthday IS NOT NULL
"""


def blocklist_table(
    cur: duckdb.DuckDBPyConnection, rules: IdentityRules, plain: PlainValues | None = None
) -> pa.Table:
    """Exact values and patterns as the graph reads them. For types stored as blind indexes
    (privacy phase B) the exact values become blind indexes and the patterns are matched
    here against the decrypted values (the flagged blind indexes become exact values)."""
    plain = plain or PlainValues(None)
    rows = rules.blocklist_rows()
    # Overrides hold values as stored (split() translates plain phones and emails).
    overrides = [
        {"id_type": t, "value": v, "pattern": None}
        for t, v in cur.execute(
            "SELECT id_type, id_value FROM identity_overrides WHERE action = 'blocklist'"
        ).fetchall()
    ]
    for id_type in ENCRYPTED_TYPES:
        if not identifiers_encrypted(cur, id_type):
            continue
        mine = [r for r in rows if r["id_type"] == id_type]
        rows = [r for r in rows if r["id_type"] != id_type]
        rows += [
            {"id_type": id_type, "value": plain.stored(cur, id_type, r["value"]), "pattern": None}
            for r in mine
            if r["value"] is not None
        ]
        patterns = [re.compile(r["pattern"]) for r in mine if r["pattern"] is not None]
        if patterns:
            for stored, token in cur.execute(
                "SELECT DISTINCT id_value, id_value_enc FROM record_identifiers "
                "WHERE id_type = ? AND id_value_enc IS NOT NULL",
                [id_type],
            ).fetchall():
                value = plain.open(str(token), IDENTIFIER_CONTEXT)
                if value is not None and any(p.search(value) for p in patterns):
                    rows.append({"id_type": id_type, "value": str(stored), "pattern": None})
    return pa.Table.from_pylist(rows + overrides, schema=_BLOCKLIST_SCHEMA)


def graph_inputs(
    cur: duckdb.DuckDBPyConnection, rules: IdentityRules, plain: PlainValues | None = None
) -> dict[str, pa.Table]:
    """The graph's inputs as Arrow tables (to run the graph on another engine, e.g. Spark)."""
    return {
        graph.EDGES: cur.execute(EDGES_SQL).arrow().read_all(),
        graph.TYPES: pa.Table.from_pylist(rules.type_rows(), schema=_TYPES_SCHEMA),
        graph.BLOCKLIST: blocklist_table(cur, rules, plain),
        graph.BDAYS: cur.execute(BDAYS_SQL).arrow().read_all(),
    }


def register_inputs(engine: Engine, inputs: dict[str, pa.Table]) -> None:
    for name, table in inputs.items():
        engine.register_arrow(name, table)


class _TempTableEngine(DuckDBEngine):
    """The DuckDB engine with the graph's work tables as TEMP tables (no WAL, no commit cost
    in the workspace file)."""

    def create_table_as(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS\n{self.translate(sql)}")


def _run_graph(
    cur: duckdb.DuckDBPyConnection,
    rules: IdentityRules,
    progress: Progress,
    plain: PlainValues | None = None,
) -> graph.GraphStats:
    """Run the graph on the store's own DuckDB (inputs as views, no copy)."""
    engine = _TempTableEngine(cur)
    cur.execute(f"CREATE OR REPLACE TEMP VIEW {graph.EDGES} AS {EDGES_SQL}")
    cur.execute(f"CREATE OR REPLACE TEMP VIEW {graph.BDAYS} AS {BDAYS_SQL}")
    engine.register_arrow(
        graph.TYPES, pa.Table.from_pylist(rules.type_rows(), schema=_TYPES_SCHEMA)
    )
    engine.register_arrow(graph.BLOCKLIST, blocklist_table(cur, rules, plain))
    try:
        return graph.build_components(
            engine, default_priority=rules.default.priority, progress=progress
        )
    finally:
        cur.execute(f"DROP VIEW IF EXISTS {graph.EDGES}")
        cur.execute(f"DROP VIEW IF EXISTS {graph.BDAYS}")
        cur.unregister(graph.TYPES)
        cur.unregister(graph.BLOCKLIST)


# --------------------------------------------------------------------------- persistence


# The override that removed an edge `ri` of record_identifiers (join condition on `o`).
_REMOVED_EDGE = """
    ON o.id_type = ri.id_type AND o.id_value = ri.id_value
   AND (o.action = 'remove_identifier' OR (o.action = 'remove_edge' AND o.record_id = ri.record_id))
"""


def _persist(cur: duckdb.DuckDBPyConnection, actor: str) -> tuple[int, int]:
    """Write links, one_ids, redirects and events from the graph's outputs.

    Returns (merges, splits) of previously existing persons.
    """
    now = _now()
    # Edge log: every edge with what became of it; removed edges (manual splits) stay in the
    # log with their reason. Replaced wholesale (a bulk delete makes the commit slow).
    replace_table(
        cur,
        "identity_links",
        f"""
        SELECT e.record_id, e.id_type, e.id_value,
               CASE WHEN e.id_type = '{MATCH_TYPE}' THEN 'match' ELSE 'record' END AS kind,
               e.source_id,
               CASE WHEN e.id_type = '{MATCH_TYPE}' THEN mp.rule_name ELSE e.id_type END AS rule,
               mp.weight,
               e.status,
               CASE e.status
                   WHEN 'ambiguous' THEN 'shared by persons it may not merge (unique '
                        || 'identifier, limit or birthday conflict)'
                   WHEN 'blocklisted' THEN 'value is blocklisted'
               END AS reason,
               e.observed_at,
               CAST(? AS TIMESTAMP) AS updated_at
        FROM {graph.OUT_EDGES} e
        LEFT JOIN (SELECT pair_id, weight,
                          CASE status WHEN 'approved' THEN 'review' ELSE 'splink' END AS rule_name
                   FROM identity_match_pairs) mp
             ON e.id_type = '{MATCH_TYPE}' AND mp.pair_id = e.id_value
        UNION ALL
        SELECT ri.record_id, ri.id_type, ri.id_value, 'record' AS kind, ri.source_id,
               ri.id_type AS rule, NULL AS weight, 'removed' AS status,
               coalesce(o.reason, 'removed by ' || o.actor) AS reason, ri.observed_at,
               CAST(? AS TIMESTAMP) AS updated_at
        FROM record_identifiers ri JOIN identity_overrides o {_REMOVED_EDGE}
        """,
        [now, now],
    )
    # Old person of each record (through redirects), per new component.
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE oneid_comp_old AS
        SELECT o.comp, coalesce(rd.to_one_id, ir.one_id) AS old, count(*) AS n,
               min(c.observed_at) AS first_seen
        FROM {graph.OUT_RECORDS} o
        JOIN identity_records ir ON ir.record_id = o.record_id
        LEFT JOIN identity_redirects rd ON rd.from_one_id = ir.one_id
        LEFT JOIN contacts c ON c.record_id = o.record_id
        GROUP BY ALL
        """
    )
    cur.execute(
        """
        CREATE OR REPLACE TEMP TABLE oneid_keep AS
        WITH cand AS (
            SELECT c.comp, c.old, c.n, c.first_seen, p.seq FROM oneid_comp_old c
            JOIN identity_persons p ON p.one_id = c.old
        ),
        pick AS (SELECT comp, arg_min(old, seq) AS survivor FROM cand GROUP BY comp),
        ranked AS (
            SELECT pick.survivor, pick.comp,
                   row_number() OVER (PARTITION BY pick.survivor
                                      ORDER BY cand.n DESC, cand.first_seen NULLS LAST,
                                               pick.comp) AS rank
            FROM pick JOIN cand ON cand.comp = pick.comp AND cand.old = pick.survivor
        )
        SELECT comp, survivor AS one_id FROM ranked WHERE rank = 1
        """
    )
    # New persons for components without a surviving id, oldest first.
    start = int(cur.execute("SELECT nextval('identity_person_seq')").fetchone()[0])  # type: ignore[index]
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE oneid_fresh AS
        WITH first_seen AS (
            SELECT comp, min(observed_at) AS observed_at FROM (
                SELECT record_comp AS comp, observed_at FROM {graph.OUT_EDGES}
                UNION ALL  -- a removed edge still tells when its record was first seen
                SELECT r.comp, ri.observed_at
                FROM record_identifiers ri JOIN identity_overrides o {_REMOVED_EDGE}
                JOIN {graph.OUT_RECORDS} r ON r.record_id = ri.record_id
            ) GROUP BY comp
        )
        SELECT comp, {start} - 1 + row_number() OVER (ORDER BY observed_at NULLS LAST, comp)
                   AS seq
        FROM first_seen
        WHERE comp NOT IN (SELECT comp FROM oneid_keep)
        """
    )
    fresh = int(cur.execute("SELECT count(*) FROM oneid_fresh").fetchone()[0])  # type: ignore[index]
    if fresh > 1:
        # Advance the sequence past the ids just issued (one nextval per id, set-based).
        cur.execute("SELECT count(nextval('identity_person_seq')) FROM range(?)", [fresh - 1])
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE oneid_assign AS
        SELECT comp, one_id FROM oneid_keep
        UNION ALL
        SELECT comp, '{ONE_ID_PREFIX}' || lpad(CAST(seq AS VARCHAR), 8, '0') FROM oneid_fresh
        """
    )
    cur.execute(
        "INSERT INTO identity_persons SELECT a.one_id, f.seq, 'active', ?, ? "
        "FROM oneid_fresh f JOIN oneid_assign a ON a.comp = f.comp",
        [now, now],
    )
    # Merges: an old person whose records went to a component that kept another id.
    cur.execute(
        """
        CREATE OR REPLACE TEMP TABLE oneid_merged AS
        SELECT c.old, arg_max(a.one_id, c.n) AS survivor
        FROM oneid_comp_old c JOIN oneid_assign a ON a.comp = c.comp
        WHERE c.old NOT IN (SELECT one_id FROM oneid_keep)
        GROUP BY c.old
        """
    )
    merges = int(cur.execute("SELECT count(*) FROM oneid_merged").fetchone()[0])  # type: ignore[index]
    # Splits: an old person that kept its id but lost records to other components.
    cur.execute(
        """
        CREATE OR REPLACE TEMP TABLE oneid_split AS
        SELECT DISTINCT c.old, a.one_id AS other
        FROM oneid_comp_old c JOIN oneid_assign a ON a.comp = c.comp
        WHERE c.old IN (SELECT one_id FROM oneid_keep) AND a.one_id <> c.old
          AND a.one_id NOT IN (SELECT one_id FROM oneid_keep)
        """
    )
    splits = int(cur.execute("SELECT count(*) FROM oneid_split").fetchone()[0])  # type: ignore[index]
    if merges:
        _write_merge_events(cur, now, actor)
        cur.execute(
            "INSERT OR REPLACE INTO identity_redirects "
            "SELECT old, survivor, 'merged', ? FROM oneid_merged",
            [now],
        )
        # Keep every redirect pointing at the final survivor.
        cur.execute(
            """
            UPDATE identity_redirects SET to_one_id = m.survivor
            FROM oneid_merged m WHERE identity_redirects.to_one_id = m.old
            """
        )
        cur.execute(
            "UPDATE identity_persons SET status = 'merged', updated_at = ? "
            "WHERE one_id IN (SELECT old FROM oneid_merged)",
            [now],
        )
    if splits:
        cur.execute(
            """
            INSERT INTO identity_events
            SELECT nextval('identity_event_seq'), ?, 'split', old, other, 'rebuild', NULL,
                   '{"reason": "the person no longer connects these records"}', ?
            FROM oneid_split
            """,
            [now, actor],
        )
    # Current mappings, replaced wholesale.
    replace_table(
        cur,
        "identity_records",
        f"SELECT o.record_id, a.one_id FROM {graph.OUT_RECORDS} o "
        "JOIN oneid_assign a ON a.comp = o.comp",
    )
    replace_table(
        cur,
        "identity_oneid",
        f"SELECT n.id_type, n.id_value, a.one_id FROM {graph.OUT_NODES} n "
        f"JOIN oneid_assign a ON a.comp = n.comp WHERE n.id_type <> '{MATCH_TYPE}'",
    )
    replace_table(
        cur,
        "identity_ambiguous",
        f"""
        SELECT DISTINCT id_type, id_value,
               'shared by persons it may not merge (household / shared identifier)' AS reason,
               CAST(? AS TIMESTAMP) AS detected_at
        FROM {graph.OUT_EDGES} WHERE status = 'ambiguous' AND id_type <> '{MATCH_TYPE}'
        """,
        [now],
    )
    for name in (
        "oneid_comp_old",
        "oneid_keep",
        "oneid_fresh",
        "oneid_assign",
        "oneid_merged",
        "oneid_split",
    ):
        cur.execute(f"DROP TABLE IF EXISTS {name}")
    return merges, splits


def _write_merge_events(cur: duckdb.DuckDBPyConnection, now: datetime, actor: str) -> None:
    """One event per merged person with its evidence: the record that carries identifiers of
    both persons (and those identifiers), or the probabilistic / reviewed link that joined
    them (pair id and match weight)."""
    cur.execute(
        f"""
        INSERT INTO identity_events
        WITH prev_node AS (
            SELECT o.id_type, o.id_value, coalesce(rd.to_one_id, o.one_id) AS old
            FROM identity_oneid o LEFT JOIN identity_redirects rd ON rd.from_one_id = o.one_id
        ),
        prev_rec AS (
            SELECT ir.record_id, coalesce(rd.to_one_id, ir.one_id) AS old
            FROM identity_records ir
            LEFT JOIN identity_redirects rd ON rd.from_one_id = ir.one_id
        ),
        owned AS (
            SELECT e.record_id, e.id_type, e.id_value,
                   CASE WHEN e.id_type = '{MATCH_TYPE}' THEN pr.old ELSE pn.old END AS old
            FROM {graph.OUT_EDGES} e
            LEFT JOIN prev_node pn ON pn.id_type = e.id_type AND pn.id_value = e.id_value
            LEFT JOIN prev_rec pr ON pr.record_id = e.record_id
            WHERE e.status = 'linked'
        ),
        bridge AS (
            SELECT m.old, m.survivor, a.record_id, a.id_type AS type_a, a.id_value AS value_a,
                   b.id_type AS type_b, b.id_value AS value_b, b.record_id AS record_b
            FROM oneid_merged m
            JOIN owned a ON a.old = m.old
            JOIN owned b ON b.old = m.survivor
             AND ((a.id_type <> '{MATCH_TYPE}' AND b.id_type <> '{MATCH_TYPE}'
                   AND b.record_id = a.record_id)
                  OR (a.id_type = '{MATCH_TYPE}' AND b.id_type = '{MATCH_TYPE}'
                      AND b.id_value = a.id_value))
        ),
        ev AS (
            SELECT b.old, b.survivor,
                   arg_min(CASE WHEN b.type_a = '{MATCH_TYPE}' THEN coalesce(mp.rule_name, 'splink')
                                ELSE b.type_b END, b.type_a) AS rule,
                   max(mp.weight) AS weight,
                   to_json(list({{'record_id': b.record_id,
                                  'identifier': b.type_a || ':' || b.value_a,
                                  'other_identifier': b.type_b || ':' || b.value_b,
                                  'other_record_id': b.record_b,
                                  'match_weight': mp.weight}}
                                ORDER BY b.record_id, b.type_a, b.value_a)[1:5]) AS evidence
            FROM bridge b
            LEFT JOIN (SELECT pair_id, weight,
                              CASE status WHEN 'approved' THEN 'review' ELSE 'splink' END
                                  AS rule_name
                       FROM identity_match_pairs) mp
              ON b.type_a = '{MATCH_TYPE}' AND mp.pair_id = b.value_a
            GROUP BY b.old, b.survivor
        )
        SELECT nextval('identity_event_seq'), ?, 'merge', m.survivor, m.old,
               coalesce(ev.rule, 'rebuild'), ev.weight,
               coalesce(CAST(ev.evidence AS VARCHAR), '[]'), ?
        FROM oneid_merged m LEFT JOIN ev ON ev.old = m.old AND ev.survivor = m.survivor
        """,
        [now, actor],
    )


# --------------------------------------------------------------------------- rebuild


def resolve_identities(
    store: Store,
    *,
    workspace: Path | None = None,
    match: bool = True,
    retrain: bool = False,
    progress: Progress = _noop,
    actor: str = SYSTEM,
) -> ResolveReport:
    """Full rebuild: deterministic graph, stable one_ids, then (optionally) the probabilistic
    pass, whose automatic merges are folded in by a second graph pass."""
    rules = IdentityRules.load(workspace)
    plain = PlainValues(workspace)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with store.transaction() as cur:
        stats = _run_graph(cur, rules, progress, plain)
        progress("assigning one_ids")
        merges, splits = _persist(cur, actor)
    timings["deterministic"] = time.perf_counter() - started
    auto = review = blocked = 0
    if match:
        from mecdp.identity import matching

        started = time.perf_counter()
        progress("probabilistic matching")
        outcome = matching.match_persons(
            store, workspace=workspace, retrain=retrain, progress=progress
        )
        auto, review, blocked = outcome.auto, outcome.review, outcome.blocked
        timings["probabilistic"] = time.perf_counter() - started
        if auto:
            started = time.perf_counter()
            progress("folding automatic matches into the graph")
            with store.transaction() as cur:
                stats = _run_graph(cur, rules, progress, plain)
                m2, s2 = _persist(cur, actor)
            merges, splits = merges + m2, splits + s2
            timings["fold"] = time.perf_counter() - started
    return _report(store, stats, merges, splits, auto, review, blocked, timings)


def _report(
    store: Store,
    stats: graph.GraphStats,
    merges: int,
    splits: int,
    auto: int,
    review: int,
    blocked: int,
    timings: dict[str, float],
) -> ResolveReport:
    cur = store.cursor()
    counts = dict(
        cur.execute("SELECT status, count(*) FROM identity_links GROUP BY status").fetchall()
    )
    persons = cur.execute("SELECT count(DISTINCT one_id) FROM identity_records").fetchone()
    ambiguous = cur.execute("SELECT count(*) FROM identity_ambiguous").fetchone()
    return ResolveReport(
        records=stats.records,
        persons=int(persons[0]) if persons else 0,
        linked_edges=int(counts.get("linked", 0)),
        ambiguous_identifiers=int(ambiguous[0]) if ambiguous else 0,
        blocklisted_edges=int(counts.get("blocklisted", 0)),
        conflicting_components=stats.conflicting_components,
        merges=merges,
        splits=splits,
        match_auto=auto,
        match_review=review,
        match_blocked=blocked,
        seconds={k: round(v, 3) for k, v in timings.items()},
    )


# --------------------------------------------------------------------------- lookups


def parse_ref(ref: str) -> tuple[str, str]:
    """'OID00000001' -> ('one_id', ...); 'phone:+86138...' -> ('phone', '+86138...')."""
    ref = ref.strip()
    if ref.startswith(ONE_ID_PREFIX) and ":" not in ref:
        return "one_id", ref
    id_type, sep, value = ref.partition(":")
    if not sep or not id_type or not value:
        raise InputError(
            "give a one_id (OID00000001) or an identifier as <type>:<value>",
            field="ref",
            value=ref,
        )
    return id_type, value


def follow_redirects(cur: duckdb.DuckDBPyConnection, one_id: str) -> str:
    row = cur.execute(
        "SELECT to_one_id FROM identity_redirects WHERE from_one_id = ?", [one_id]
    ).fetchone()
    return str(row[0]) if row else one_id


def resolve(
    cur: duckdb.DuckDBPyConnection,
    ref: str,
    *,
    rules: IdentityRules | None = None,
    workspace: Path | None = None,
) -> Resolution:
    """The person behind a one_id (old ones redirect) or an identifier (a plain phone or
    email is looked up by its blind index when values are stored encrypted)."""
    kind, plain_value = parse_ref(ref)
    value = plain_value
    if kind in ENCRYPTED_TYPES:
        value = PlainValues(workspace).stored(cur, kind, plain_value)
    if kind == "one_id":
        exists = cur.execute(
            "SELECT status FROM identity_persons WHERE one_id = ?", [value]
        ).fetchone()
        if exists is None:
            return Resolution(None, "unknown")
        survivor = follow_redirects(cur, value)
        if survivor != value:
            return Resolution(survivor, "redirected", redirected_from=value)
        return Resolution(value, "found")
    row = cur.execute(
        "SELECT one_id FROM identity_oneid WHERE id_type = ? AND id_value = ?", [kind, value]
    ).fetchone()
    if row is not None:
        return Resolution(follow_redirects(cur, str(row[0])), "found")
    if (rules or IdentityRules.load(workspace)).is_blocklisted(kind, plain_value) or cur.execute(
        "SELECT 1 FROM identity_overrides WHERE action = 'blocklist' AND id_type = ? "
        "AND id_value = ?",
        [kind, value],
    ).fetchone():
        return Resolution(None, "blocklisted")
    amb = cur.execute(
        "SELECT 1 FROM identity_ambiguous WHERE id_type = ? AND id_value = ?", [kind, value]
    ).fetchone()
    if amb is not None:
        persons = cur.execute(
            """
            SELECT DISTINCT r.one_id FROM record_identifiers ri
            JOIN identity_records r ON r.record_id = ri.record_id
            WHERE ri.id_type = ? AND ri.id_value = ? ORDER BY 1
            """,
            [kind, value],
        ).fetchall()
        return Resolution(None, "ambiguous", candidates=tuple(str(p[0]) for p in persons))
    return Resolution(None, "unknown")


def _plain_values(
    cur: duckdb.DuckDBPyConnection, pairs: Iterable[tuple[str, str]], workspace: Path | None
) -> dict[tuple[str, str], str]:
    """Plain values of stored (blind-indexed) phones and emails, for the person's own view
    (the API masks them unless the role may see them)."""
    wanted = {(t, v) for t, v in pairs if t in ENCRYPTED_TYPES}
    if not wanted or not any(identifiers_encrypted(cur, t) for t in ENCRYPTED_TYPES):
        return {}
    plain = PlainValues(workspace)
    out: dict[tuple[str, str], str] = {}
    for t, v in wanted:
        row = cur.execute(
            "SELECT any_value(id_value_enc) FROM record_identifiers "
            "WHERE id_type = ? AND id_value = ?",
            [t, v],
        ).fetchone()
        value = plain.open(str(row[0]), IDENTIFIER_CONTEXT) if row and row[0] else None
        if value is not None:
            out[(t, v)] = value
    return out


def _require_person(cur: duckdb.DuckDBPyConnection, ref: str, workspace: Path | None = None) -> str:
    found = resolve(cur, ref, workspace=workspace)
    if found.one_id is None:
        raise NotFound(f"no person for {ref!r} ({found.status})", field="ref", value=ref)
    return found.one_id


def person_identifiers(
    cur: duckdb.DuckDBPyConnection, ref: str, workspace: Path | None = None
) -> dict[str, Any]:
    """A person's identifiers (unmasked: the caller masks) and records."""
    one_id = _require_person(cur, ref, workspace)
    ids = cur.execute(
        """
        SELECT o.id_type, o.id_value, count(l.record_id) AS records,
               min(l.observed_at) AS first_seen, max(l.observed_at) AS last_seen
        FROM identity_oneid o
        LEFT JOIN identity_links l ON l.id_type = o.id_type AND l.id_value = o.id_value
             AND l.status = 'linked'
        WHERE o.one_id = ? GROUP BY ALL ORDER BY o.id_type, o.id_value
        """,
        [one_id],
    ).fetchall()
    records = cur.execute(
        "SELECT count(*) FROM identity_records WHERE one_id = ?", [one_id]
    ).fetchone()
    merged_from = cur.execute(
        "SELECT from_one_id FROM identity_redirects WHERE to_one_id = ? ORDER BY 1", [one_id]
    ).fetchall()
    shown = _plain_values(cur, ((str(i[0]), str(i[1])) for i in ids), workspace)
    ids = [(t, shown.get((str(t), str(v)), v), *rest) for t, v, *rest in ids]
    return {
        "one_id": one_id,
        "records": int(records[0]) if records else 0,
        "merged_from": [str(m[0]) for m in merged_from],
        "identifiers": [
            {
                "id_type": str(t),
                "id_value": str(v),
                "records": int(n),
                "first_seen": f.isoformat() + "Z" if f else None,
                "last_seen": s.isoformat() + "Z" if s else None,
            }
            for t, v, n, f, s in ids
        ],
    }


def person_store(cur: duckdb.DuckDBPyConnection, one_id: str) -> str | None:
    """The store a person is served at most (for consultants' store scope)."""
    row = cur.execute(
        "SELECT mode(c.store_code) FROM identity_records r JOIN contacts c "
        "ON c.record_id = r.record_id WHERE r.one_id = ? AND c.store_code IS NOT NULL",
        [one_id],
    ).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def history(
    cur: duckdb.DuckDBPyConnection, ref: str, workspace: Path | None = None
) -> list[dict[str, Any]]:
    """Merge history of a person: events naming it or any one_id merged into it."""
    one_id = _require_person(cur, ref, workspace)
    rows = cur.execute(
        """
        SELECT event_seq, occurred_at, action, one_id, other_one_id, rule, weight, evidence,
               actor
        FROM identity_events
        WHERE one_id = ? OR other_one_id = ?
           OR one_id IN (SELECT from_one_id FROM identity_redirects WHERE to_one_id = ?)
        ORDER BY event_seq
        """,
        [one_id, one_id, one_id],
    ).fetchall()
    return [
        {
            "event_seq": int(r[0]),
            "occurred_at": r[1].isoformat() + "Z",
            "action": r[2],
            "one_id": r[3],
            "other_one_id": r[4],
            "rule": r[5],
            "weight": r[6],
            "evidence": json.loads(r[7]),
            "actor": r[8],
        }
        for r in rows
    ]


def explain(
    cur: duckdb.DuckDBPyConnection, ref: str, workspace: Path | None = None
) -> dict[str, Any]:
    """A person's graph: its records, every edge with its status and evidence, and why two
    identifiers are linked (the records carrying both), plus probabilistic links."""
    one_id = _require_person(cur, ref, workspace)
    edges = cur.execute(
        """
        SELECT l.record_id, l.id_type, l.id_value, l.kind, l.source_id, l.rule, l.weight,
               l.status, l.reason, l.observed_at
        FROM identity_links l JOIN identity_records r ON r.record_id = l.record_id
        WHERE r.one_id = ? ORDER BY l.record_id, l.id_type, l.id_value
        """,
        [one_id],
    ).fetchall()
    matches = cur.execute(
        """
        SELECT pair_id, record_id_l, record_id_r, weight, probability, fields, status,
               decided_by
        FROM identity_match_pairs
        WHERE record_id_l IN (SELECT record_id FROM identity_records WHERE one_id = ?)
           OR record_id_r IN (SELECT record_id FROM identity_records WHERE one_id = ?)
        ORDER BY weight DESC
        """,
        [one_id, one_id],
    ).fetchall()
    shown = _plain_values(cur, ((str(e[1]), str(e[2])) for e in edges), workspace)
    edges = [(e[0], e[1], shown.get((str(e[1]), str(e[2])), e[2]), *e[3:]) for e in edges]
    by_node: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in edges:
        if e[7] == "linked" and e[1] != MATCH_TYPE:
            by_node[(str(e[1]), str(e[2]))].append(str(e[0]))
    records: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (t, v), recs in by_node.items():
        for rec in recs:
            records[rec].append((t, v))
    links = []
    for rec, nodes in sorted(records.items()):
        nodes = sorted(nodes)
        for a, b in zip(nodes, nodes[1:], strict=False):
            links.append(
                {
                    "from": {"id_type": a[0], "id_value": a[1]},
                    "to": {"id_type": b[0], "id_value": b[1]},
                    "evidence": {"record_id": rec},
                }
            )
    return {
        "one_id": one_id,
        "edges": [
            {
                "record_id": e[0],
                "id_type": e[1],
                "id_value": e[2],
                "kind": e[3],
                "source_id": e[4],
                "rule": e[5],
                "weight": e[6],
                "status": e[7],
                "reason": e[8],
                "observed_at": e[9].isoformat() + "Z" if e[9] else None,
            }
            for e in edges
        ],
        "links": links,
        "matches": [
            {
                "pair_id": m[0],
                "record_id_l": m[1],
                "record_id_r": m[2],
                "weight": m[3],
                "probability": m[4],
                "fields": json.loads(m[5]),
                "status": m[6],
                "decided_by": m[7],
            }
            for m in matches
        ],
        "history": history(cur, one_id),
    }


# --------------------------------------------------------------------------- split


def split(
    store: Store,
    *,
    action: str,
    id_type: str,
    id_value: str,
    record_id: str | None = None,
    reason: str | None = None,
    actor: str = SYSTEM,
    actor_role: str | None = None,
    workspace: Path | None = None,
    head_file: Path | None = None,
) -> ResolveReport:
    """Unmerge by removing an edge (record, identifier), an identifier, or blocklisting a
    value; the graph is recomputed from the edge log, the split is audited."""
    from mecdp.privacy.audit import audited_transaction

    if action not in ("remove_edge", "remove_identifier", "blocklist"):
        raise InputError(
            "action must be remove_edge, remove_identifier or blocklist",
            field="action",
            value=action,
        )
    if action == "remove_edge" and not record_id:
        raise InputError("remove_edge needs the record_id", field="record_id")
    cur = store.cursor()
    id_value = PlainValues(workspace).stored(cur, id_type, id_value)
    sql = (
        "SELECT DISTINCT r.one_id FROM identity_links l JOIN identity_records r "
        "ON r.record_id = l.record_id WHERE l.id_type = ? AND l.id_value = ?"
    )
    params: list[Any] = [id_type, id_value]
    if action == "remove_edge":
        sql += " AND l.record_id = ?"
        params.append(record_id)
    before = cur.execute(sql, params).fetchall()
    if not before and action != "blocklist":
        raise NotFound(
            f"no such edge of type {id_type} in the identity graph",
            field="id_value",
        )
    with audited_transaction(store, head_file=head_file) as tx:
        tx.execute(
            "INSERT INTO identity_overrides VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                uuid.uuid4().hex,
                action,
                record_id if action == "remove_edge" else None,
                id_type,
                id_value,
                reason,
                actor,
                _now(),
            ],
        )
        tx.execute(
            "INSERT INTO identity_events VALUES (nextval('identity_event_seq'), ?, ?, ?, NULL, "
            "'manual', NULL, ?, ?)",
            [
                _now(),
                action,
                str(before[0][0]) if before else None,
                json.dumps(
                    {"id_type": id_type, "record_id": record_id, "reason": reason},
                    ensure_ascii=False,
                ),
                actor,
            ],
        )
        append_audit(
            tx,
            AuditEntry(
                actor=actor,
                actor_role=actor_role,
                action=f"identity.{action}",
                target=f"identity:{id_type}",
                member_refs=[member_ref(str(b[0])) for b in before],
                detail={"id_type": id_type, "record_id": record_id, "reason": reason},
            ),
        )
    return resolve_identities(store, workspace=workspace, match=False, actor=actor)


# --------------------------------------------------------------------------- review


def list_review(cur: duckdb.DuckDBPyConnection, *, status: str = "pending") -> list[dict[str, Any]]:
    rows = cur.execute(
        """
        SELECT p.pair_id, p.record_id_l, p.record_id_r, rl.one_id, rr.one_id, p.weight,
               p.probability, p.fields, p.status, p.reason, p.created_at
        FROM identity_match_pairs p
        LEFT JOIN identity_records rl ON rl.record_id = p.record_id_l
        LEFT JOIN identity_records rr ON rr.record_id = p.record_id_r
        WHERE p.status = ? ORDER BY p.weight DESC, p.pair_id
        """,
        [status],
    ).fetchall()
    return [
        {
            "pair_id": r[0],
            "record_id_l": r[1],
            "record_id_r": r[2],
            "one_id_l": r[3],
            "one_id_r": r[4],
            "weight": r[5],
            "probability": r[6],
            "fields": json.loads(r[7]),
            "status": r[8],
            "reason": r[9],
            "created_at": r[10].isoformat() + "Z",
        }
        for r in rows
    ]


def decide_review(
    store: Store,
    pair_id: str,
    *,
    approve: bool,
    actor: str = SYSTEM,
    actor_role: str | None = None,
    workspace: Path | None = None,
    head_file: Path | None = None,
) -> dict[str, Any]:
    """Approve (merge through a reviewed link) or reject (remembered, never proposed again)."""
    from mecdp.privacy.audit import audited_transaction

    cur = store.cursor()
    row = cur.execute(
        "SELECT status, record_id_l, record_id_r, weight FROM identity_match_pairs "
        "WHERE pair_id = ?",
        [pair_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no review pair {pair_id!r}", field="pair_id", value=pair_id)
    if row[0] != "pending":
        raise Conflict(f"pair {pair_id} is {row[0]}, not pending", field="pair_id")
    people = [
        str(p[0])
        for p in cur.execute(
            "SELECT one_id FROM identity_records WHERE record_id IN (?, ?)", [row[1], row[2]]
        ).fetchall()
    ]
    status = "approved" if approve else "rejected"
    with audited_transaction(store, head_file=head_file) as tx:
        tx.execute(
            "UPDATE identity_match_pairs SET status = ?, decided_by = ?, decided_at = ? "
            "WHERE pair_id = ?",
            [status, actor, _now(), pair_id],
        )
        tx.execute(
            "INSERT INTO identity_events VALUES (nextval('identity_event_seq'), ?, ?, ?, ?, "
            "'review', ?, ?, ?)",
            [
                _now(),
                f"review_{'approve' if approve else 'reject'}",
                people[0] if people else None,
                people[1] if len(people) > 1 else None,
                row[3],
                json.dumps({"pair_id": pair_id, "records": [row[1], row[2]]}),
                actor,
            ],
        )
        append_audit(
            tx,
            AuditEntry(
                actor=actor,
                actor_role=actor_role,
                action=f"identity.review_{'approve' if approve else 'reject'}",
                target=f"identity_match_pairs:{pair_id}",
                member_refs=[member_ref(p) for p in people],
                detail={"pair_id": pair_id},
            ),
        )
    if approve:
        resolve_identities(store, workspace=workspace, match=False, actor=actor)
    return {"pair_id": pair_id, "status": status}


# --------------------------------------------------------------------------- stitching


def pair_id_of(record_l: str, record_r: str) -> str:
    a, b = sorted((record_l, record_r))
    return hashlib.sha256(f"{a}\x1f{b}".encode()).hexdigest()[:24]


def stitch_records(
    cur: duckdb.DuckDBPyConnection,
    record_ids: Iterable[str],
    *,
    rules: IdentityRules | None = None,
    workspace: Path | None = None,
) -> StitchResult:
    """Link new records' identifiers into the existing graph (real-time path).

    Runs inside the caller's transaction (the stream processor's). For each record: its
    identifiers (blocklisted and ambiguous ones never link) lead to zero, one or several
    persons. None: a new person. One: the record joins it. Several: they merge when the merged
    person breaks no rule (unique types, limits, birthdays) - the oldest one_id survives, the
    others redirect; otherwise the record joins the person its strongest identifier names and
    the identifiers that would have bridged become ambiguous (household identifiers).
    Identifiers a person may not take (a second unique value, over the limit) are not
    attached. Returns the affected one_ids. A batch rebuild gives the same grouping.
    """
    rules = rules or IdentityRules.load(workspace)
    plain = PlainValues(workspace)
    ids = list(dict.fromkeys(record_ids))
    if not ids:
        return StitchResult((), 0, 0, 0)
    cur.register("oneid_stitch_ids", pa.table({"record_id": pa.array(ids, pa.string())}))
    try:
        rows = cur.execute(
            f"""
            SELECT ri.record_id, ri.id_type, ri.id_value, ri.source_id, ri.observed_at,
                   coalesce(rd.to_one_id, o.one_id) AS one_id,
                   a.id_type IS NOT NULL AS ambiguous,
                   b.id_type IS NOT NULL AS removed,
                   {plain_identifier_sql(cur)} AS stored
            FROM record_identifiers ri
            JOIN oneid_stitch_ids s ON s.record_id = ri.record_id
            LEFT JOIN identity_oneid o ON o.id_type = ri.id_type AND o.id_value = ri.id_value
            LEFT JOIN identity_redirects rd ON rd.from_one_id = o.one_id
            LEFT JOIN identity_ambiguous a ON a.id_type = ri.id_type
                 AND a.id_value = ri.id_value
            LEFT JOIN identity_overrides b ON b.id_type = ri.id_type AND b.id_value = ri.id_value
                 AND (b.action IN ('blocklist', 'remove_identifier')
                      OR (b.action = 'remove_edge' AND b.record_id = ri.record_id))
            ORDER BY ri.record_id
            """
        ).fetchall()
        bdays = dict(
            cur.execute(
                "SELECT c.record_id, c.birthday FROM contacts c "
                "JOIN oneid_stitch_ids s USING (record_id) WHERE c.birthday IS NOT NULL"
            ).fetchall()
        )
        known = {
            str(r[0]): str(r[1])
            for r in cur.execute(
                "SELECT i.record_id, i.one_id FROM identity_records i "
                "JOIN oneid_stitch_ids s USING (record_id)"
            ).fetchall()
        }
    finally:
        cur.unregister("oneid_stitch_ids")
    stitcher = _Stitcher(cur, rules, plain)
    stitcher.preload([str(r[5]) for r in rows if r[5]] + list(known.values()))
    per_record: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in rows:
        per_record[str(r[0])].append(r)
    for record_id in ids:
        stitcher.stitch(record_id, per_record.get(record_id, []), bdays.get(record_id), known)
    return stitcher.flush()


class _Stitcher:
    """In-memory state of one stitching batch, written back in bulk by `flush`."""

    def __init__(
        self, cur: duckdb.DuckDBPyConnection, rules: IdentityRules, plain: PlainValues
    ) -> None:
        self.cur, self.rules, self.plain, self.now = cur, rules, plain, _now()
        self.new_ids: dict[tuple[str, str], str] = {}  # identifiers mapped in this batch
        self.records: dict[str, str] = {}
        self.links: list[tuple[Any, ...]] = []
        self.redirects: dict[str, str] = {}
        self.ambiguous: set[tuple[str, str]] = set()
        self.persons: list[str] = []  # placeholders of new persons, in creation order
        self.issued: list[tuple[str, int]] = []  # their one_ids and numbers (flush)
        self.events: list[tuple[Any, ...]] = []
        self.affected: set[str] = set()
        self._summaries: dict[str, dict[str, set[str]]] = {}
        self._bdays: dict[str, set[Any]] = {}
        self._seq: dict[str, int] = {}
        self.created = self.merged = 0

    # person facts (loaded lazily, kept up to date in memory)
    def _summary(self, one_id: str) -> dict[str, set[str]]:
        if one_id not in self._summaries:
            values: dict[str, set[str]] = defaultdict(set)
            for t, v in self.cur.execute(
                "SELECT id_type, id_value FROM identity_oneid WHERE one_id = ?", [one_id]
            ).fetchall():
                values[str(t)].add(str(v))
            self._summaries[one_id] = values
            self._bdays[one_id] = {
                b[0]
                for b in self.cur.execute(
                    "SELECT DISTINCT c.birthday FROM identity_records r JOIN contacts c "
                    "USING (record_id) WHERE r.one_id = ? AND c.birthday IS NOT NULL",
                    [one_id],
                ).fetchall()
            }
        return self._summaries[one_id]

    def _seq_of(self, one_id: str) -> int:
        if one_id not in self._seq:
            row = self.cur.execute(
                "SELECT seq FROM identity_persons WHERE one_id = ?", [one_id]
            ).fetchone()
            self._seq[one_id] = int(row[0]) if row else 1 << 62
        return self._seq[one_id]

    def _current(self, one_id: str) -> str:
        while one_id in self.redirects:
            one_id = self.redirects[one_id]
        return one_id

    def _fits(self, persons: list[str], extra: dict[str, set[str]], bday: Any) -> bool:
        merged: dict[str, set[str]] = defaultdict(set)
        bdays: set[Any] = set()
        for p in persons:
            for t, vs in self._summary(p).items():
                merged[t] |= vs
            bdays |= self._bdays.get(p, set())
        for t, vs in extra.items():
            merged[t] |= vs
        if bday is not None:
            bdays.add(bday)
        for t, vs in merged.items():
            limit = self.rules.rule(t).max_values
            if limit is not None and len(vs) > limit:
                return False
        return _birthdays_compatible(bdays)

    def _new_person(self) -> str:
        # A placeholder until flush issues the real one_ids in one statement; younger than
        # every existing person, in creation order.
        one_id = f"{_NEW_PERSON}{len(self.persons)}"
        self.persons.append(one_id)
        self._seq[one_id] = _NEW_SEQ + len(self.persons)
        self._summaries[one_id] = defaultdict(set)
        self._bdays[one_id] = set()
        self.created += 1
        return one_id

    def preload(self, one_ids: Iterable[str]) -> None:
        """Identifiers and birthdays of the persons a batch names, in two set-based reads
        (instead of two point reads per record)."""
        wanted = sorted(set(one_ids) - set(self._summaries))
        if not wanted:
            return
        for one_id in wanted:
            self._summaries[one_id] = defaultdict(set)
            self._bdays[one_id] = set()
        self.cur.register("oneid_stitch_persons", pa.table({"one_id": pa.array(wanted)}))
        try:
            for one_id, id_type, id_value in self.cur.execute(
                "SELECT o.one_id, o.id_type, o.id_value FROM identity_oneid o "
                "JOIN oneid_stitch_persons p USING (one_id)"
            ).fetchall():
                self._summaries[str(one_id)][str(id_type)].add(str(id_value))
            for one_id, birthday in self.cur.execute(
                "SELECT DISTINCT r.one_id, c.birthday FROM identity_records r "
                "JOIN oneid_stitch_persons p USING (one_id) JOIN contacts c USING (record_id) "
                "WHERE c.birthday IS NOT NULL"
            ).fetchall():
                self._bdays[str(one_id)].add(birthday)
        finally:
            self.cur.unregister("oneid_stitch_persons")

    def _issue_one_ids(self) -> None:
        """Replace the placeholders of new persons by real one_ids, issued in creation order."""
        if not self.persons:
            return
        seqs = sorted(
            int(r[0])
            for r in self.cur.execute(
                "SELECT nextval('identity_person_seq') FROM range(?)", [len(self.persons)]
            ).fetchall()
        )
        real = {p: one_id_of(seq) for p, seq in zip(self.persons, seqs, strict=True)}
        self.issued = [(real[p], seq) for p, seq in zip(self.persons, seqs, strict=True)]

        def named(one_id: str) -> str:
            return real.get(one_id, one_id)

        self.records = {k: named(v) for k, v in self.records.items()}
        self.new_ids = {k: named(v) for k, v in self.new_ids.items()}
        self.redirects = {named(k): named(v) for k, v in self.redirects.items()}
        self.affected = {named(a) for a in self.affected}
        self.events = [(*e[:2], named(e[2]), named(e[3]), *e[4:]) for e in self.events]

    def stitch(
        self, record_id: str, rows: list[tuple[Any, ...]], bday: Any, known: dict[str, str]
    ) -> None:
        usable: list[tuple[Any, ...]] = []
        for r in rows:
            id_type = str(r[1])
            value = self.plain.open(str(r[8]), IDENTIFIER_CONTEXT) if r[8] else str(r[2])
            blocked = bool(r[7]) or (
                value is not None and self.rules.is_blocklisted(id_type, value)
            )
            status = "blocklisted" if blocked else ("ambiguous" if r[6] else None)
            if status:
                self.links.append(self._link(r, status))
            else:
                usable.append(r)
        # Persons named by the identifiers, strongest identifier first.
        usable.sort(key=lambda r: -self.rules.rule(str(r[1])).priority)
        named: list[tuple[str, tuple[Any, ...]]] = []
        for r in usable:
            key = (str(r[1]), str(r[2]))
            owner = self.new_ids.get(key) or (str(r[5]) if r[5] else None)
            if owner:
                named.append((self._current(owner), r))
        if record_id in known:
            named.insert(0, (self._current(known[record_id]), usable[0] if usable else ()))
        persons = list(dict.fromkeys(p for p, _ in named))
        extra: dict[str, set[str]] = defaultdict(set)
        for r in usable:
            extra[str(r[1])].add(str(r[2]))
        if not persons:
            target = self._new_person()
        elif len(persons) == 1:
            target = persons[0]
        elif self._fits(persons, extra, bday):
            target = min(persons, key=self._seq_of)
            for other in persons:
                if other != target:
                    self._merge(other, target, record_id, named)
        else:
            target = persons[0]  # the person the strongest identifier names
            for p, r in named:
                if p != target:
                    self.ambiguous.add((str(r[1]), str(r[2])))
        self.records[record_id] = target
        self.affected.add(target)
        summary = self._summary(target)
        for r in usable:
            key = (str(r[1]), str(r[2]))
            if key in self.ambiguous:
                self.links.append(self._link(r, "ambiguous"))
                continue
            owner = self.new_ids.get(key) or (str(r[5]) if r[5] else None)
            if owner is None:
                limit = self.rules.rule(key[0]).max_values
                if limit is not None and len(summary[key[0]] | {key[1]}) > limit:
                    self.links.append(self._link(r, "ambiguous"))
                    continue
                self.new_ids[key] = target
            summary[key[0]].add(key[1])
            self.links.append(self._link(r, "linked"))
        if bday is not None:
            self._bdays.setdefault(target, set()).add(bday)

    def _merge(
        self, other: str, target: str, record_id: str, named: list[tuple[str, tuple[Any, ...]]]
    ) -> None:
        self.redirects[other] = target
        for t, vs in self._summary(other).items():
            self._summary(target)[t] |= vs
        self._bdays.setdefault(target, set()).update(self._bdays.get(other, set()))
        for key, owner in list(self.new_ids.items()):
            if owner == other:
                self.new_ids[key] = target
        for rec, owner in list(self.records.items()):
            if owner == other:
                self.records[rec] = target
        evidence = [
            {"id_type": str(r[1]), "id_value": str(r[2]), "record": record_id}
            for p, r in named
            if r
        ]
        self.events.append(
            (self.now, "merge", target, other, "stitch", None, json.dumps(evidence), SYSTEM)
        )
        self.affected.discard(other)
        self.merged += 1

    def _link(self, r: tuple[Any, ...], status: str) -> tuple[Any, ...]:
        reason = {
            "blocklisted": "value is blocklisted",
            "ambiguous": "shared by persons it may not merge, or over the person's limit",
        }.get(status)
        return (r[0], r[1], r[2], "record", r[3], r[1], None, status, reason, r[4], self.now)

    def flush(self) -> StitchResult:
        cur = self.cur
        self._issue_one_ids()
        self._bulk(
            "identity_persons",
            {
                "one_id": [p for p, _ in self.issued],
                "seq": [s for _, s in self.issued],
                "status": ["active"] * len(self.issued),
                "created_at": [self.now] * len(self.issued),
                "updated_at": [self.now] * len(self.issued),
            },
        )
        if self.redirects:
            final = {k: self._current(k) for k in self.redirects}
            cur.executemany(
                "INSERT OR REPLACE INTO identity_redirects VALUES (?, ?, 'merged', ?)",
                [(k, v, self.now) for k, v in final.items()],
            )
            for old, new in final.items():
                cur.execute(
                    "UPDATE identity_redirects SET to_one_id = ? WHERE to_one_id = ?", [new, old]
                )
                cur.execute("UPDATE identity_oneid SET one_id = ? WHERE one_id = ?", [new, old])
                cur.execute("UPDATE identity_records SET one_id = ? WHERE one_id = ?", [new, old])
                cur.execute(
                    "UPDATE identity_persons SET status = 'merged', updated_at = ? "
                    "WHERE one_id = ?",
                    [self.now, old],
                )
        if self.events:
            cur.executemany(
                "INSERT INTO identity_events VALUES (nextval('identity_event_seq'), "
                "?, ?, ?, ?, ?, ?, ?, ?)",
                self.events,
            )
        self._bulk(
            "identity_records",
            {
                "record_id": list(self.records),
                "one_id": [self._current(v) for v in self.records.values()],
            },
        )
        self._bulk(
            "identity_oneid",
            {
                "id_type": [k[0] for k in self.new_ids],
                "id_value": [k[1] for k in self.new_ids],
                "one_id": [self._current(v) for v in self.new_ids.values()],
            },
        )
        if self.ambiguous:
            cur.executemany(
                "INSERT OR IGNORE INTO identity_ambiguous VALUES (?, ?, ?, ?)",
                [
                    (t, v, "shared by persons it may not merge (stitching)", self.now)
                    for t, v in self.ambiguous
                ],
            )
            cur.executemany(
                "DELETE FROM identity_oneid WHERE id_type = ? AND id_value = ?",
                list(self.ambiguous),
            )
        if self.links:
            columns = list(zip(*self.links, strict=True))
            names = [
                "record_id",
                "id_type",
                "id_value",
                "kind",
                "source_id",
                "rule",
                "weight",
                "status",
                "reason",
                "observed_at",
                "updated_at",
            ]
            rows = dict(zip(names, map(list, columns), strict=True))
            self._bulk("identity_links", rows, replace_by="record_id")
        return StitchResult(
            tuple(sorted(self._current(a) for a in self.affected)),
            self.created,
            self.merged,
            len(self.ambiguous),
        )

    def _bulk(
        self, table: str, columns: dict[str, list[Any]], *, replace_by: str | None = None
    ) -> None:
        """Insert rows (upsert on the primary key, or replace the rows of the same
        `replace_by` values for a table without one)."""
        first = next(iter(columns.values()))
        if not first:
            return
        arrow = pa.table(columns)
        self.cur.register("oneid_stitch_rows", arrow)
        try:
            if replace_by:
                self.cur.execute(
                    f"DELETE FROM {table} WHERE {replace_by} IN "
                    f"(SELECT {replace_by} FROM oneid_stitch_rows)"
                )
                self.cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM oneid_stitch_rows")
            else:
                self.cur.execute(
                    f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM oneid_stitch_rows"
                )
        finally:
            self.cur.unregister("oneid_stitch_rows")


def _birthdays_compatible(bdays: set[Any]) -> bool:
    days = sorted(bdays)
    for i, a in enumerate(days):
        for b in days[i + 1 :]:
            if abs((b - a).days) <= 1:
                continue
            if a.year == b.year and a.month == b.day and a.day == b.month:
                continue
            return False
    return True

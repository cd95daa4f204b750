"""The deterministic identity graph: connected components under the identifier rules.

Written once in DuckDB-dialect SQL and run through the engine seam (`mecdp.store.engine`), so
the same code runs on DuckDB and on Spark. No Python loop touches rows: Python only drives
the iterations (label propagation until stable, one pass per priority level).

The graph is bipartite: records on one side, identifier nodes (`id_type`, `id_value`) on the
other; an edge is "record R carries identifier X". Two identifiers are linked when a record
carries both - that record is the evidence of the link. Virtual nodes of type ``~match``
carry probabilistic or reviewed links between two records the same way.

Algorithm (`build_components`):

1. **Blocklist.** Nodes whose value is blocklisted (exact values and regular expressions per
   type) are removed with all their edges; they never link anything.
2. **Components.** Min-label propagation over all remaining edges until no label changes:
   every record gets the smallest record number of its component.
3. **Check.** A component is *in conflict* when it holds more different values of a type than
   the type allows (``unique``: one; ``limit``: n), or two birthdays that cannot be the same
   person (different, not a day/month swap, more than one day apart).
4. **Re-link conflicting components by priority.** Only the records of conflicting components
   are re-linked, strongest identifier type first. Each level adds the nodes of one priority:
   a node touching one current sub-person is attached to it; a node touching several (a
   *bridge*) merges them unless the merged person would break a rule (unique type, limit,
   birthdays) - then the node is marked *ambiguous* (a household identifier: 家庭共用手机号)
   and links nobody. If bridges accepted at one level together still build a conflicting
   person, all of that level's bridges in it are made ambiguous (the sub-persons before the
   level were valid, so this always ends valid). So the weakest evidence is dropped first,
   and only the edges that would cause a wrong merge.

Inputs (tables the caller registers on the engine):

- ``oneid_in_edges(record_id, id_type, id_value, ...)``: every record-identifier edge (other
  columns, e.g. the source and when it was observed, are carried to the output edges);
- ``oneid_in_types(id_type, priority, max_values, is_unique)``: the configured types;
- ``oneid_in_blocklist(id_type, value, pattern)``: exact values or patterns;
- ``oneid_in_bdays(record_id, bday_days, bday_y, bday_m, bday_d)``: known birthdays (days
  since 1970-01-01 and the date parts).

Outputs: ``oneid_out_records(record_id, comp)``; ``oneid_out_edges(<the input edge's
columns>, status, comp, record_comp)`` (status: linked, ambiguous, blocklisted; comp is the
component a linked node belongs to, record_comp the record's); ``oneid_out_nodes(id_type,
id_value, comp)``: every linked node once. A component is numbered by the rank of its smallest
record_id (so ordering components by number orders them by that record_id).

Every step works on integer keys (dense numbers for records, nodes and types); the strings
are joined back once, in the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from mecdp.clean.rules import lit
from mecdp.store.engine import Engine

EDGES = "oneid_in_edges"
TYPES = "oneid_in_types"
BLOCKLIST = "oneid_in_blocklist"
BDAYS = "oneid_in_bdays"
OUT_RECORDS = "oneid_out_records"
OUT_EDGES = "oneid_out_edges"
OUT_NODES = "oneid_out_nodes"

LINKED = "linked"
AMBIGUOUS = "ambiguous"
BLOCKLISTED = "blocklisted"

EMPTY_BDAYS = pa.table(
    {
        "record_id": pa.array([], pa.string()),
        "bday_days": pa.array([], pa.int64()),
        "bday_y": pa.array([], pa.int64()),
        "bday_m": pa.array([], pa.int64()),
        "bday_d": pa.array([], pa.int64()),
    }
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GraphStats:
    records: int
    components: int
    conflicting_components: int
    iterations: int
    levels: int


def _noop(_: str) -> None:
    return None


def label_propagation(
    engine: Engine, pairs: str, out: str, *, prefix: str, max_iterations: int = 200
) -> int:
    """Connected components of a bipartite graph `pairs(a BIGINT, b BIGINT)`.

    Writes `out(a, comp)`: for every `a`, the smallest `a` of its component. Returns the
    number of iterations. Labels only decrease, so a stable sum means a stable labelling.
    """
    # The first round needs no labels yet: every b takes its smallest a.
    current, spare = f"{prefix}_l0", f"{prefix}_l1"
    engine.create_table_as(
        current,
        f"""
        WITH node_lab AS (SELECT b, min(a) AS comp FROM {pairs} GROUP BY b)
        SELECT p.a, min(n.comp) AS comp FROM {pairs} p JOIN node_lab n ON n.b = p.b
        GROUP BY p.a
        """,
    )
    previous = _label_sum(engine, current)
    iterations = 1
    while iterations < max_iterations:
        iterations += 1
        engine.create_table_as(
            spare,
            f"""
            WITH node_lab AS (
                SELECT p.b, min(l.comp) AS comp FROM {pairs} p JOIN {current} l ON l.a = p.a
                GROUP BY p.b
            )
            SELECT p.a, min(n.comp) AS comp
            FROM {pairs} p JOIN node_lab n ON n.b = p.b
            GROUP BY p.a
            """,
        )
        engine.drop(current)
        current, spare = spare, current
        total = _label_sum(engine, current)
        if total == previous:
            break
        previous = total
    engine.create_table_as(out, f"SELECT a, comp FROM {current}")
    engine.drop(current)
    return iterations


def _label_sum(engine: Engine, table: str) -> int:
    value = engine.fetch_arrow(f"SELECT sum(comp) AS s, count(*) AS n FROM {table}")
    total = value.column(0)[0].as_py()
    return int(total) if total is not None else 0


# SQL fragments --------------------------------------------------------------------------


def _type_violations(values: str, key: str) -> str:
    """Keys of `values(key, nid, tid)` sets holding more values of a type than it allows."""
    return f"""
        SELECT DISTINCT v.{key} AS k
        FROM {values} v JOIN g_type t ON t.tid = v.tid
        WHERE t.max_values IS NOT NULL
        GROUP BY v.{key}, v.tid
        HAVING count(DISTINCT v.nid) > max(t.max_values)
    """


def _bday_violations(bdays: str, key: str) -> str:
    """Keys of `bdays(key, bday_days, bday_y, bday_m, bday_d)` sets with two birthdays that
    cannot be one person's (not equal, not a day/month swap, more than one day apart)."""
    return f"""
        SELECT DISTINCT x.{key} AS k
        FROM {bdays} x JOIN {bdays} y ON x.{key} = y.{key} AND x.bday_days < y.bday_days
        WHERE y.bday_days - x.bday_days > 1
          AND NOT (x.bday_y = y.bday_y AND x.bday_m = y.bday_d AND x.bday_d = y.bday_m)
    """


def _pattern_test(engine: Engine) -> str:
    """A boolean SQL expression on `v.id_type, v.id_value`: the value matches a blocklist
    pattern of its type. The patterns of a type are one constant alternation, inlined as a
    literal (a regular expression read from a column is compiled per row)."""
    patterns = engine.fetch_arrow(
        f"SELECT id_type, pattern FROM {BLOCKLIST} WHERE pattern IS NOT NULL "
        "ORDER BY id_type, pattern"
    ).to_pylist()
    by_type: dict[str, list[str]] = {}
    for row in patterns:
        by_type.setdefault(str(row["id_type"]), []).append(str(row["pattern"]))
    tests = [
        f"(v.id_type = {lit(t)} AND regexp_matches(v.id_value, "
        f"{lit('|'.join(f'(?:{p})' for p in ps))}))"
        for t, ps in sorted(by_type.items())
    ]
    return " OR ".join(tests) or "FALSE"


def build_components(
    engine: Engine,
    *,
    default_priority: int = 10,
    progress: Progress = _noop,
) -> GraphStats:
    """Compute the components of the registered inputs; see the module docstring."""
    progress("preparing the graph")
    # Records are numbered in record_id order: the smallest number of a component names it.
    engine.create_table_as("g_in", f"SELECT * FROM {EDGES}")
    edge_columns = engine.columns("g_in")
    engine.create_table_as(
        "g_type",
        f"""
        SELECT v.id_type, row_number() OVER (ORDER BY v.id_type) AS tid,
               coalesce(t.priority, {int(default_priority)}) AS priority, t.max_values
        FROM (SELECT DISTINCT id_type FROM g_in) v LEFT JOIN {TYPES} t ON t.id_type = v.id_type
        """,
    )
    engine.create_table_as(
        "g_node",
        f"""
        SELECT v.id_type, v.id_value, t.tid,
               row_number() OVER (ORDER BY v.id_type, v.id_value) AS nid,
               (x.id_type IS NOT NULL OR {_pattern_test(engine)}) AS blocked
        FROM (SELECT DISTINCT id_type, id_value FROM g_in) v
        JOIN g_type t ON t.id_type = v.id_type
        LEFT JOIN (SELECT DISTINCT id_type, value FROM {BLOCKLIST} WHERE value IS NOT NULL) x
          ON x.id_type = v.id_type AND x.value = v.id_value
        """,
    )
    engine.create_table_as(
        "g_rec",
        """
        SELECT record_id, row_number() OVER (ORDER BY record_id) AS rid
        FROM (SELECT DISTINCT record_id FROM g_in) r
        """,
    )
    engine.create_table_as(
        "g_ein",
        """
        SELECT e.*, r.rid AS a, n.nid AS b, n.tid, n.blocked
        FROM g_in e
        JOIN g_rec r ON r.record_id = e.record_id
        JOIN g_node n ON n.id_type = e.id_type AND n.id_value = e.id_value
        """,
    )
    engine.drop("g_in")
    engine.create_table_as("g_e", "SELECT DISTINCT a, b, tid FROM g_ein WHERE NOT blocked")
    engine.create_table_as(
        "g_bday",
        f"""
        SELECT r.rid, min(b.bday_days) AS bday_days, min(b.bday_y) AS bday_y,
               min(b.bday_m) AS bday_m, min(b.bday_d) AS bday_d
        FROM {BDAYS} b JOIN g_rec r ON r.record_id = b.record_id
        GROUP BY r.rid, b.bday_days
        """,
    )
    progress("connected components")
    iterations = label_propagation(engine, "g_e", "g_cc", prefix="g_cc")
    # Every record, with a label (records whose edges were all blocklisted stand alone).
    engine.create_table_as(
        "g_comp",
        "SELECT r.rid, coalesce(c.comp, r.rid) AS comp "
        "FROM g_rec r LEFT JOIN g_cc c ON c.a = r.rid",
    )
    engine.create_table_as(
        "g_vals",
        "SELECT DISTINCT c.comp, e.b AS nid, e.tid FROM g_e e JOIN g_comp c ON c.rid = e.a",
    )
    engine.create_table_as(
        "g_comp_bday",
        "SELECT DISTINCT c.comp, b.bday_days, b.bday_y, b.bday_m, b.bday_d "
        "FROM g_bday b JOIN g_comp c ON c.rid = b.rid",
    )
    engine.create_table_as(
        "g_bad",
        f"SELECT k AS comp FROM ({_type_violations('g_vals', 'comp')}) t "
        f"UNION SELECT k AS comp FROM ({_bday_violations('g_comp_bday', 'comp')}) b",
    )
    conflicting = engine.count("g_bad")
    levels = 0
    if conflicting:
        progress(f"re-linking {conflicting:,} conflicting components by priority")
        levels = _relink_conflicts(engine)
        engine.create_table_as(
            "g_final",
            """
            SELECT c.rid, coalesce(s.sc, c.comp) AS comp
            FROM g_comp c LEFT JOIN l_sub s ON s.rid = c.rid
            """,
        )
        engine.create_table_as(
            "g_node_comp",
            """
            SELECT v.nid, v.comp FROM g_vals v
            WHERE v.comp NOT IN (SELECT comp FROM g_bad)
            UNION ALL
            SELECT nid, sc AS comp FROM l_att
            """,
        )
    else:
        engine.create_table_as("g_final", "SELECT rid, comp FROM g_comp")
        engine.create_table_as("g_node_comp", "SELECT nid, comp FROM g_vals")
    progress("writing components")
    engine.create_table_as(
        OUT_RECORDS,
        "SELECT r.record_id, f.comp FROM g_final f JOIN g_rec r ON r.rid = f.rid",
    )
    # Extra columns of the input edges are carried through to the output edges.
    carried = ", ".join(f"e.{c}" for c in edge_columns)
    engine.create_table_as(
        OUT_EDGES,
        f"""
        SELECT {carried},
               CASE WHEN e.blocked THEN '{BLOCKLISTED}'
                    WHEN nc.comp IS NULL THEN '{AMBIGUOUS}'
                    ELSE '{LINKED}' END AS status,
               nc.comp, f.comp AS record_comp
        FROM g_ein e
        JOIN g_final f ON f.rid = e.a
        LEFT JOIN g_node_comp nc ON nc.nid = e.b
        """,
    )
    engine.create_table_as(
        OUT_NODES,
        "SELECT n.id_type, n.id_value, nc.comp FROM g_node_comp nc JOIN g_node n ON n.nid = nc.nid",
    )
    stats = GraphStats(
        records=engine.count("g_rec"),
        components=int(
            engine.fetch_arrow("SELECT count(DISTINCT comp) AS n FROM g_final").column(0)[0].as_py()
        ),
        conflicting_components=conflicting,
        iterations=iterations,
        levels=levels,
    )
    for name in (
        "g_type",
        "g_ein",
        "g_e",
        "g_bday",
        "g_cc",
        "g_comp",
        "g_vals",
        "g_comp_bday",
        "g_bad",
        "g_final",
        "g_node_comp",
        "g_rec",
        "g_node",
        "l_sub",
        "l_att",
    ):
        engine.drop(name)
    return stats


def _relink_conflicts(engine: Engine) -> int:
    """Step 4 of the algorithm over the records of conflicting components; fills `l_sub(rid,
    sc)` (their sub-persons) and `l_att(nid, sc, tid)` (the nodes attached to them)."""
    engine.create_table_as(
        "l_edges",
        """
        SELECT e.a AS rid, e.b AS nid, e.tid, t.priority
        FROM g_e e JOIN g_comp c ON c.rid = e.a JOIN g_type t ON t.tid = e.tid
        WHERE c.comp IN (SELECT comp FROM g_bad)
        """,
    )
    engine.create_table_as(
        "l_sub",
        "SELECT rid, rid AS sc FROM g_comp WHERE comp IN (SELECT comp FROM g_bad)",
    )
    engine.create_table_as(
        "l_att",
        "SELECT CAST(NULL AS BIGINT) AS nid, CAST(NULL AS BIGINT) AS sc, "
        "CAST(NULL AS BIGINT) AS tid WHERE 1 = 0",
    )
    priorities = [
        int(v)
        for v in engine.fetch_arrow("SELECT DISTINCT priority FROM l_edges ORDER BY priority DESC")
        .column(0)
        .to_pylist()
    ]
    for priority in priorities:
        _relink_level(engine, priority)
    engine.drop("l_edges")
    return len(priorities)


def _relink_level(engine: Engine, priority: int) -> None:
    engine.create_table_as(
        "l_adj",
        f"""
        SELECT DISTINCT le.nid, s.sc, le.tid
        FROM l_edges le JOIN l_sub s ON s.rid = le.rid
        WHERE le.priority = {int(priority)}
        """,
    )
    engine.create_table_as(
        "l_deg", "SELECT nid, count(*) AS deg FROM l_adj GROUP BY nid HAVING count(*) >= 2"
    )
    # Values of each sub-person once this level is attached.
    engine.create_table_as(
        "l_vals", "SELECT nid, sc, tid FROM l_att UNION SELECT nid, sc, tid FROM l_adj"
    )
    engine.create_table_as(
        "l_bd",
        """
        SELECT DISTINCT s.sc, b.bday_days, b.bday_y, b.bday_m, b.bday_d
        FROM l_sub s JOIN g_bday b ON b.rid = s.rid
        """,
    )
    # The person each bridge would build: the union of the sub-persons it touches.
    engine.create_table_as(
        "l_cand_vals",
        """
        SELECT DISTINCT a.nid AS x, v.nid, v.tid
        FROM l_adj a JOIN l_deg d ON d.nid = a.nid JOIN l_vals v ON v.sc = a.sc
        """,
    )
    engine.create_table_as(
        "l_cand_bd",
        """
        SELECT DISTINCT a.nid AS x, b.bday_days, b.bday_y, b.bday_m, b.bday_d
        FROM l_adj a JOIN l_deg d ON d.nid = a.nid JOIN l_bd b ON b.sc = a.sc
        """,
    )
    engine.create_table_as(
        "l_rej",
        f"SELECT k AS nid FROM ({_type_violations('l_cand_vals', 'x')}) t "
        f"UNION SELECT k AS nid FROM ({_bday_violations('l_cand_bd', 'x')}) b",
    )
    engine.create_table_as(
        "l_bridge",
        """
        SELECT a.sc AS a, a.nid AS b, a.tid FROM l_adj a
        JOIN l_deg d ON d.nid = a.nid
        WHERE a.nid NOT IN (SELECT nid FROM l_rej)
        """,
    )
    label_propagation(engine, "l_bridge", "l_map0", prefix="l_cc")
    # Post-check: a person built from several sub-persons by this level's bridges.
    engine.create_table_as(
        "l_newvals",
        "SELECT DISTINCT m.comp AS nsc, v.nid, v.tid FROM l_vals v JOIN l_map0 m ON m.a = v.sc",
    )
    engine.create_table_as(
        "l_newbd",
        """
        SELECT DISTINCT m.comp AS nsc, b.bday_days, b.bday_y, b.bday_m, b.bday_d
        FROM l_bd b JOIN l_map0 m ON m.a = b.sc
        """,
    )
    engine.create_table_as(
        "l_badn",
        f"SELECT k AS nsc FROM ({_type_violations('l_newvals', 'nsc')}) t "
        f"UNION SELECT k AS nsc FROM ({_bday_violations('l_newbd', 'nsc')}) b",
    )
    engine.create_table_as(
        "l_map",
        """
        SELECT a AS sc, CASE WHEN comp IN (SELECT nsc FROM l_badn) THEN a ELSE comp END AS nsc
        FROM l_map0
        """,
    )
    engine.create_table_as(
        "l_sub_next",
        """
        SELECT s.rid, coalesce(m.nsc, s.sc) AS sc
        FROM l_sub s LEFT JOIN l_map m ON m.sc = s.sc
        """,
    )
    # Attached: earlier nodes (re-labelled), this level's single-person nodes, and the
    # accepted bridges that survived the post-check. Every other bridge is ambiguous.
    engine.create_table_as(
        "l_att_next",
        """
        SELECT a.nid, coalesce(m.nsc, a.sc) AS sc, a.tid
        FROM l_att a LEFT JOIN l_map m ON m.sc = a.sc
        UNION ALL
        SELECT a.nid, a.sc, a.tid FROM l_adj a WHERE a.nid NOT IN (SELECT nid FROM l_deg)
        UNION ALL
        SELECT DISTINCT b.b AS nid, m.nsc AS sc, b.tid
        FROM l_bridge b JOIN l_map0 m0 ON m0.a = b.a JOIN l_map m ON m.sc = b.a
        WHERE m0.comp NOT IN (SELECT nsc FROM l_badn)
        """,
    )
    engine.drop("l_sub")
    engine.create_table_as("l_sub", "SELECT rid, sc FROM l_sub_next")
    engine.drop("l_att")
    engine.create_table_as("l_att", "SELECT nid, sc, tid FROM l_att_next")
    for name in (
        "l_adj",
        "l_deg",
        "l_vals",
        "l_bd",
        "l_cand_vals",
        "l_cand_bd",
        "l_rej",
        "l_bridge",
        "l_map0",
        "l_newvals",
        "l_newbd",
        "l_badn",
        "l_map",
        "l_sub_next",
        "l_att_next",
    ):
        engine.drop(name)

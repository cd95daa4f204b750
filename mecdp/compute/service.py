"""Member layering runs: every tag, score, tier and due date, persisted with history.

* `compute_all(store, ...)`: the full run behind `mecdp compute` and the scheduler in
  `serve`. Stages run on an `Engine` (DuckDB, or Spark with the inputs copied over); the
  results are always persisted in the DuckDB store.
* `refresh_event_tags(cur, one_ids, ...)`: the stream path. The tags whose refresh is
  ``event`` are recomputed for a few persons inside the caller's transaction.

A run: materialise the member facts (`facts`), compute the rule tags (`tags`), RFM (`rfm`),
CLV (`clv`), behaviour tiers (`behaviour`) and treatment due dates (`cycles`), join the
numbers into ``scores``, turn the categorical layers into system tags (so a tier's history
is tag history and the migration matrix reads it), diff every tag against
``customer_tags`` into ``customer_tag_history`` and record the run with the parameters that
explain it (RFM cut-offs, fitted CLV parameters, tag rule versions) in ``compute_runs``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mecdp.compute import behaviour, clv, cycles, facts, rfm, tags
from mecdp.compute.config import LayeringConfig
from mecdp.compute.tags import TagDefinition
from mecdp.errors import InputError, NotFound
from mecdp.profiles import serving
from mecdp.store import Store
from mecdp.store.duckdb_store import replace_table
from mecdp.store.engine import DuckDBEngine, Engine

Progress = Callable[[str, int, int], None]  # stage label, stages done, stages in all

# the stage outputs, named by the stage modules
OUT_TAGS = tags.OUT_TAGS
OUT_RFM = rfm.OUTPUT
OUT_CUTOFFS = rfm.CUTOFFS
OUT_BEHAVIOUR = behaviour.OUTPUT
OUT_DUE = cycles.OUTPUT
CLV_SUMMARY = clv.SUMMARY
OUT_CLV = "cm_out_clv"
OUT_SCORES = "cm_out_scores"
OUT_SYSTEM_TAGS = "cm_out_system_tags"
ALL_TAGS = "cm_all_tags"
TAG_VERSIONS = "cm_tag_versions"
SCOPE = "cm_scope"
STAGE_OUTPUTS = (OUT_TAGS, OUT_RFM, OUT_CUTOFFS, OUT_BEHAVIOUR, OUT_DUE, OUT_CLV, OUT_SCORES)

DEFINITION_COLUMNS = [
    "tag_id",
    "name_zh",
    "name_en",
    "description",
    "owner",
    "category",
    "value_type",
    "refresh",
    "rule",
    "enabled",
]

# One writer of the layering tables at a time in a process: the scheduler's full run and
# the stream processor's event refresh would otherwise conflict on customer_tags.
WRITE_LOCK = threading.Lock()

CLV_COLUMNS = clv.SCORE_SCHEMA  # the CLV columns of `scores`


@dataclass(frozen=True)
class SystemTag:
    """A layer computed by a stage (not by a tag rule), kept as a tag for its history."""

    tag_id: str
    name_zh: str
    name_en: str
    category: str
    value_type: str
    description: str
    source: str  # SQL: one_id, value rows
    computed_by: str  # where the value comes from, for people reading the definition

    def definition_row(self) -> dict[str, Any]:
        return {
            "tag_id": self.tag_id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "description": self.description,
            "owner": "mecdp",
            "category": self.category,
            "value_type": self.value_type,
            "refresh": "scheduled",
            "rule": {"kind": "system", "computed_by": self.computed_by},
            "origin": "system",
        }


def _score_tag(tag_id: str, name_zh: str, name_en: str, category: str, about: str) -> SystemTag:
    """An enumerated layer: the scores column of the same name."""
    source = f"SELECT one_id, {tag_id} AS value FROM {OUT_SCORES} WHERE {tag_id} IS NOT NULL"
    return SystemTag(tag_id, name_zh, name_en, category, "enum", about, source, f"scores.{tag_id}")


def _due_tag(tag_id: str, status: str, name_zh: str, name_en: str, about: str) -> SystemTag:
    """A flag: the member has a treatment with this due status."""
    source = f"SELECT DISTINCT one_id, 'true' AS value FROM {OUT_DUE} WHERE status = '{status}'"
    return SystemTag(
        tag_id, name_zh, name_en, "treatment", "boolean", about, source,
        f"treatment_due.status = {status}",
    )  # fmt: skip


SYSTEM_TAGS = (
    _score_tag("value_tier", "价值分层", "Value tier", "value",
               "高价值 / 潜力 / 休眠 from the RFM groups (layering.yaml)"),
    _score_tag("rfm_segment", "RFM 客群", "RFM segment", "value",
               "The eight classic RFM groups (重要价值 ... 一般挽留)"),
    _score_tag("purchase_tier", "消费行为", "Purchase behaviour", "purchase",
               "VIP, 疗程型, 促销驱动型, 单次体验型, regular"),
    _score_tag("interaction_tier", "互动分层", "Interaction tier", "interaction",
               "高互动 / 低互动 across social and service channels"),
    _score_tag("preferred_category", "偏好品类", "Preferred category", "preference",
               "Treatment category with the most spend, then treatments, then interest"),
    _due_tag("treatment_due_soon", "upcoming", "疗程即将到期", "Treatment due soon",
             "A treatment's next session is due within the upcoming window"),
    _due_tag("treatment_overdue", "overdue", "疗程已过期", "Treatment overdue",
             "A treatment's next session is past its due date"),
)  # fmt: skip
SYSTEM_TAG_IDS = frozenset(t.tag_id for t in SYSTEM_TAGS)


@dataclass
class ComputeReport:
    run_id: str
    as_of: str
    engine: str
    members: int = 0
    tagged: int = 0  # (member, tag) rows now current
    tag_changes: int = 0  # history rows this run appended
    scores: int = 0
    due: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _noop(_label: str, _done: int, _total: int) -> None:
    return None


def _count(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    row = cur.execute(sql, params or []).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


# --------------------------------------------------------------------------- definitions


def _canonical(rule: Any) -> str:
    return json.dumps(rule, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def api_definitions(cur: duckdb.DuckDBPyConnection) -> list[TagDefinition]:
    """Definitions saved through the API (they override shipped and workspace ones)."""
    rows = cur.execute(
        f"SELECT {', '.join(DEFINITION_COLUMNS)} FROM tag_definitions WHERE origin = 'api'"
    ).fetchall()
    keys = DEFINITION_COLUMNS
    out = []
    for row in rows:
        data = dict(zip(keys, row, strict=True))
        data["rule"] = json.loads(data["rule"])
        out.append(tags.parse_definition(data, source="tag_definitions (saved by the API)"))
    return out


def all_definitions(cur: duckdb.DuckDBPyConnection, workspace: Path | None) -> list[TagDefinition]:
    """Shipped, then workspace files, then API-saved definitions: a later layer wins."""
    merged = {d.tag_id: d for d in tags.load_definitions(workspace)}
    for definition in api_definitions(cur):
        merged[definition.tag_id] = definition
    return list(merged.values())


def _origins(cur: duckdb.DuckDBPyConnection, workspace: Path | None) -> dict[str, str]:
    """Where each definition comes from: shipped as is, changed or added by the workspace's
    files, or saved through the API."""
    shipped = {d.tag_id: d for d in tags.load_definitions(None)}
    origin = {
        d.tag_id: "shipped" if shipped.get(d.tag_id) == d else "workspace"
        for d in tags.load_definitions(workspace)
    }
    for definition in api_definitions(cur):
        origin[definition.tag_id] = "api"
    return origin


def _definition_row(definition: TagDefinition) -> dict[str, Any]:
    data = definition.model_dump(mode="json")
    return {
        "tag_id": data["tag_id"],
        "name_zh": data["name_zh"],
        "name_en": data["name_en"],
        "description": data.get("description"),
        "owner": data.get("owner"),
        "category": data["category"],
        "value_type": data["value_type"],
        "refresh": data["refresh"],
        "rule": data["rule"],
        "enabled": data.get("enabled", True),
    }


def _upsert_definition(
    cur: duckdb.DuckDBPyConnection, row: dict[str, Any], origin: str, user: str | None
) -> int:
    """Write one definition; its version goes up when its rule changed. Returns the version."""
    rule = _canonical(row["rule"])
    found = cur.execute(
        "SELECT version, rule FROM tag_definitions WHERE tag_id = ?", [row["tag_id"]]
    ).fetchone()
    if found is None:
        version = 1
    else:
        version = int(found[0]) + (0 if _canonical(json.loads(found[1])) == rule else 1)
    cur.execute("DELETE FROM tag_definitions WHERE tag_id = ?", [row["tag_id"]])
    cur.execute(
        "INSERT INTO tag_definitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row["tag_id"], row["name_zh"], row["name_en"], row.get("description"),
            row.get("owner"), row["category"], row["value_type"], row["refresh"], rule,
            version, origin, bool(row.get("enabled", True)), _now(), user,
        ],
    )  # fmt: skip
    serving.changed(cur, serving.ALL)  # tag names show in every cached profile
    return version


def sync_definitions(
    cur: duckdb.DuckDBPyConnection, workspace: Path | None, user: str | None = None
) -> tuple[list[TagDefinition], dict[str, int]]:
    """Bring tag_definitions in line with the shipped, workspace and API definitions and the
    system tags; returns the rule definitions and every tag's current rule version."""
    definitions = all_definitions(cur, workspace)
    origins = _origins(cur, workspace)
    versions: dict[str, int] = {}
    for definition in definitions:
        origin = origins.get(definition.tag_id, "shipped")
        if origin == "api":  # saved by the API: its row is the definition
            row = cur.execute(
                "SELECT version FROM tag_definitions WHERE tag_id = ?", [definition.tag_id]
            ).fetchone()
            versions[definition.tag_id] = int(row[0]) if row else 1
            continue
        versions[definition.tag_id] = _upsert_definition(
            cur, _definition_row(definition), origin, user
        )
    for system in SYSTEM_TAGS:
        versions[system.tag_id] = _upsert_definition(cur, system.definition_row(), "system", user)
    known = set(versions)
    for (tag_id,) in cur.execute("SELECT tag_id FROM tag_definitions").fetchall():
        if tag_id not in known:  # its file is gone: keep the row (history names it), disabled
            cur.execute("UPDATE tag_definitions SET enabled = FALSE WHERE tag_id = ?", [tag_id])
    return definitions, versions


def save_definition(
    cur: duckdb.DuckDBPyConnection, definition: TagDefinition, user: str | None
) -> int:
    """Save a definition from the API (origin 'api'); returns its version."""
    if definition.tag_id in SYSTEM_TAG_IDS:
        raise InputError(
            f"tag {definition.tag_id!r} is computed by the layering run and cannot be edited",
            field="tag_id",
        )
    return _upsert_definition(cur, _definition_row(definition), "api", user)


def delete_definition(cur: duckdb.DuckDBPyConnection, tag_id: str) -> None:
    """Remove an API-saved definition (shipped and workspace ones are disabled instead)."""
    row = cur.execute("SELECT origin FROM tag_definitions WHERE tag_id = ?", [tag_id]).fetchone()
    if row is None:
        raise NotFound(f"no tag {tag_id!r}", field="tag_id")
    if row[0] != "api":
        raise InputError(
            f"tag {tag_id!r} comes from {row[0]} definitions: disable it (enabled: false) "
            "instead of deleting it",
            field="tag_id",
        )
    cur.execute("DELETE FROM tag_definitions WHERE tag_id = ?", [tag_id])
    serving.changed(cur, serving.ALL)


# --------------------------------------------------------------------------- stages


def spark_engine(cur: duckdb.DuckDBPyConnection, spark: Any | None = None) -> Engine:
    """A Spark engine (local session unless given) with the layering inputs copied from the
    store (through Arrow; a cluster deployment would read them from the lake instead)."""
    from mecdp.store.engine import SparkEngine, local_spark_session

    engine = SparkEngine(spark if spark is not None else local_spark_session("mecdp-compute"))
    for table in (*facts.INPUT_TABLES, "profile_course_cards"):
        engine.register_arrow(table, cur.execute(f"SELECT * FROM {table}").arrow().read_all())
    return engine


def _engine_for(name: str, cur: duckdb.DuckDBPyConnection) -> Engine:
    if name == "duckdb":
        return DuckDBEngine(cur)
    if name == "spark":
        return spark_engine(cur)
    raise InputError(f"unknown engine {name!r}: use duckdb or spark", field="engine")


def _clv_stage(engine: Engine, as_of: datetime, config: LayeringConfig) -> dict[str, Any]:
    engine.run_pipeline(clv.summary_steps(as_of), CLV_SUMMARY)
    summary = engine.fetch_arrow(f"SELECT * FROM {CLV_SUMMARY}")
    try:
        table, params = clv.fit_and_predict(summary, config.clv)
    except (ValueError, InputError) as exc:  # too little history to fit: no CLV this run
        engine.register_arrow(OUT_CLV, CLV_COLUMNS.empty_table())
        return {"skipped": str(exc), "customers": summary.num_rows}
    engine.register_arrow(OUT_CLV, table.select(CLV_COLUMNS.names).cast(CLV_COLUMNS))
    return params


def _scores_sql(as_of: datetime) -> str:
    clv_cols = ", ".join(f"c.{name}" for name in CLV_COLUMNS.names[1:])
    return f"""
SELECT m.one_id, {facts.ts_literal(as_of)} AS as_of,
       r.recency_days, coalesce(r.frequency, 0) AS frequency,
       coalesce(r.monetary_fen, 0) AS monetary_fen, r.r_score, r.f_score, r.m_score,
       r.rfm_segment, r.value_tier, {clv_cols},
       b.purchase_tier, b.interaction_tier, b.interaction_channels, b.interactions_90d,
       b.preferred_category
FROM {facts.MEMBERS} m
LEFT JOIN {OUT_RFM} r ON r.one_id = m.one_id
LEFT JOIN {OUT_CLV} c ON c.one_id = m.one_id
LEFT JOIN {OUT_BEHAVIOUR} b ON b.one_id = m.one_id
"""


def _system_tags_sql() -> str:
    parts = [
        f"SELECT one_id, '{t.tag_id}' AS tag_id, CAST(value AS VARCHAR) AS value "
        f"FROM ({t.source}) x"
        for t in SYSTEM_TAGS
    ]
    return "\nUNION ALL\n".join(parts)


def run_stages(
    engine: Engine,
    definitions: list[TagDefinition],
    config: LayeringConfig,
    as_of: datetime,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Compute every stage output on `engine` (inputs readable there); returns the parameters
    that explain the run and the seconds per stage."""
    timings: dict[str, float] = {}
    parameters: dict[str, Any] = {}
    rule_tags = [d for d in definitions if d.enabled and d.rule.kind != "sql"]
    stages: list[tuple[str, Callable[[], None]]] = []

    def materialise_facts() -> None:
        for pipeline in facts.fact_steps(as_of):
            engine.run_pipeline(list(pipeline), pipeline[-1].output_table_name)

    def rule_tag_stage() -> None:
        engine.run_pipeline(tags.tag_steps(rule_tags, as_of), OUT_TAGS)

    def rfm_stage() -> None:
        for steps, output in rfm.rfm_pipelines(config, as_of):
            engine.run_pipeline(steps, output)
        parameters["rfm"] = {
            "cutoffs": engine.fetch_arrow(f"SELECT * FROM {OUT_CUTOFFS}").to_pylist(),
            "config": config.rfm.model_dump(mode="json"),
        }

    def clv_stage() -> None:
        parameters["clv"] = _clv_stage(engine, as_of, config)

    def behaviour_stage() -> None:
        engine.run_pipeline(behaviour.behaviour_steps(config, as_of), OUT_BEHAVIOUR)

    def due_stage() -> None:
        engine.run_pipeline(cycles.cycle_steps(config, as_of), OUT_DUE)

    def join_stage() -> None:
        engine.create_table_as(OUT_SCORES, _scores_sql(as_of))
        engine.create_table_as(OUT_SYSTEM_TAGS, _system_tags_sql())

    stages = [
        ("facts", materialise_facts),
        ("tags", rule_tag_stage),
        ("rfm", rfm_stage),
        ("clv", clv_stage),
        ("behaviour", behaviour_stage),
        ("treatment_due", due_stage),
        ("scores", join_stage),
    ]
    for done, (label, run) in enumerate(stages):
        progress(label, done, len(stages))
        started = time.perf_counter()
        run()
        timings[label] = round(time.perf_counter() - started, 3)
    progress("done", len(stages), len(stages))
    parameters["timings"] = timings
    return parameters


def _expert_tags(
    cur: duckdb.DuckDBPyConnection, definitions: list[TagDefinition], as_of: datetime
) -> pa.Table:
    """Run the enabled SQL (expert) tags on DuckDB over the materialised facts."""
    tables = [
        tags.run_expert_tag(cur, d, as_of)
        for d in definitions
        if d.enabled and d.rule.kind == "sql"
    ]
    schema = tags.TAGS_SCHEMA
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])


# --------------------------------------------------------------------------- persist


def _persist_tags(
    cur: duckdb.DuckDBPyConnection, run_id: str, now: datetime, scoped: bool, tag_ids: list[str]
) -> int:
    """Diff `ALL_TAGS` against customer_tags, append the changes to history and apply them.
    Only the tags in `tag_ids` (and, when `scoped`, the persons in `SCOPE`) take part.

    A full run rewrites customer_tags wholesale, sorted by one_id (so a member's rows share a
    row group and point reads skip the rest by min/max); deleting the changed rows instead
    makes DuckDB's commit take minutes at a million members. A scoped (stream) run changes
    a few persons in place."""
    cur.register("cm_run_tag_ids", pa.table({"tag_id": pa.array(tag_ids, pa.string())}))
    person = f"AND one_id IN (SELECT one_id FROM {SCOPE})" if scoped else ""
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE cm_tag_merge AS
        SELECT coalesce(n.one_id, o.one_id) AS one_id, coalesce(n.tag_id, o.tag_id) AS tag_id,
               CASE WHEN o.one_id IS NULL THEN 'gained'
                    WHEN n.one_id IS NULL THEN 'lost'
                    WHEN n.value <> o.value THEN 'changed' ELSE 'same' END AS change,
               n.value, o.value AS previous_value,
               coalesce(n.rule_version, v.version, o.rule_version) AS rule_version,
               o.rule_version AS kept_version, o.computed_at AS kept_since
        FROM {ALL_TAGS} n
        FULL OUTER JOIN (SELECT * FROM customer_tags
                         WHERE tag_id IN (SELECT tag_id FROM cm_run_tag_ids) {person}) o
          ON o.one_id = n.one_id AND o.tag_id = n.tag_id
        LEFT JOIN {TAG_VERSIONS} v ON v.tag_id = o.tag_id
        {"WHERE n.one_id IS NULL OR o.one_id IS NULL OR n.value <> o.value" if scoped else ""}
        """
    )
    cur.execute(
        "CREATE OR REPLACE TEMP VIEW cm_tag_changes AS "
        "SELECT * FROM cm_tag_merge WHERE change <> 'same'"
    )
    changes = _count(cur, "SELECT count(*) FROM cm_tag_changes")
    cur.execute(
        "INSERT INTO customer_tag_history SELECT one_id, tag_id, change, value, "
        "previous_value, rule_version, ?, ? FROM cm_tag_changes ORDER BY one_id",
        [now, run_id],
    )
    if scoped:
        cur.execute(
            "DELETE FROM customer_tags t USING cm_tag_changes c "
            "WHERE c.change <> 'gained' AND t.one_id = c.one_id AND t.tag_id = c.tag_id"
        )
        cur.execute(
            "INSERT INTO customer_tags SELECT one_id, tag_id, value, rule_version, ? "
            "FROM cm_tag_changes WHERE change <> 'lost'",
            [now],
        )
        serving.changed_one_ids(cur, "cm_tag_changes")
    else:  # every cached profile is dropped by the scores replacement that follows
        replace_table(
            cur,
            "customer_tags",
            """
            SELECT one_id, tag_id, value,
                   CASE change WHEN 'same' THEN kept_version ELSE rule_version END
                       AS rule_version,
                   CASE change WHEN 'same' THEN kept_since ELSE CAST(? AS TIMESTAMP) END
                       AS computed_at
            FROM cm_tag_merge WHERE change <> 'lost'
            UNION ALL
            SELECT one_id, tag_id, value, rule_version, computed_at FROM customer_tags
            WHERE tag_id NOT IN (SELECT tag_id FROM cm_run_tag_ids)
            """,
            [now],
            order_by="one_id",
        )
    cur.execute("DROP VIEW temp.cm_tag_changes")
    cur.execute("DROP TABLE temp.cm_tag_merge")
    cur.unregister("cm_run_tag_ids")
    return changes


def _collect_tags(
    cur: duckdb.DuckDBPyConnection, sources: list[str], versions: dict[str, int]
) -> None:
    """`ALL_TAGS` (a view: it is read once): every computed (one_id, tag_id, value) with the
    tag's rule version."""
    cur.register(
        TAG_VERSIONS,
        pa.table(
            {
                "tag_id": pa.array(list(versions), pa.string()),
                "version": pa.array(list(versions.values()), pa.int32()),
            }
        ),
    )
    union = "\nUNION ALL\n".join(f"SELECT one_id, tag_id, value FROM {s}" for s in sources)
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW {ALL_TAGS} AS
        SELECT t.one_id, t.tag_id, t.value, v.version AS rule_version
        FROM ({union}) t JOIN {TAG_VERSIONS} v ON v.tag_id = t.tag_id
        """
    )


def _persist_scores(cur: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Replace scores and treatment_due wholesale: every row changes each run (as_of,
    recency)."""
    for table, output in (("scores", OUT_SCORES), ("treatment_due", OUT_DUE)):
        replace_table(
            cur,
            table,
            f"SELECT *, CAST(? AS VARCHAR) AS run_id FROM {output}",
            [run_id],
            order_by="one_id",
        )
    serving.changed(cur, serving.ALL)


def _start_run(
    cur: duckdb.DuckDBPyConnection, run_id: str, as_of: datetime, scope: str, engine: str
) -> None:
    cur.execute(
        "INSERT INTO compute_runs (run_id, started_at, as_of, scope, engine, status) "
        "VALUES (?, ?, ?, ?, ?, 'running')",
        [run_id, _now(), as_of, scope, engine],
    )


def _finish_run(
    cur: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str,
    members: int | None = None,
    parameters: dict[str, Any] | None = None,
) -> None:
    cur.execute(
        "UPDATE compute_runs SET finished_at = ?, status = ?, members = ?, parameters = ? "
        "WHERE run_id = ?",
        [
            _now(),
            status,
            members,
            json.dumps(parameters, ensure_ascii=False, default=str) if parameters else None,
            run_id,
        ],
    )


def _drop_work(cur: duckdb.DuckDBPyConnection) -> None:
    engine = DuckDBEngine(cur)
    for name in (
        *facts.FACT_TABLES, *STAGE_OUTPUTS, CLV_SUMMARY, OUT_SYSTEM_TAGS, ALL_TAGS, "cm_expert",
    ):  # fmt: skip
        engine.drop(name)
    for name in (TAG_VERSIONS, "cm_run_tag_ids", "cm_expert_arrow"):
        cur.unregister(name)


def _bring_back(engine: Engine, cur: duckdb.DuckDBPyConnection) -> None:
    """Spark runs: the outputs become DuckDB temp tables of the same names."""
    for name in (*STAGE_OUTPUTS, OUT_SYSTEM_TAGS):
        table = engine.fetch_arrow(f"SELECT * FROM {name}")
        cur.register("cm_incoming", table)
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM cm_incoming")
        cur.unregister("cm_incoming")


def compute_all(
    store: Store,
    *,
    workspace: Path | None = None,
    as_of: datetime | None = None,
    engine_name: str = "duckdb",
    config: LayeringConfig | None = None,
    user: str | None = None,
    progress: Progress = _noop,
) -> ComputeReport:
    """Recompute every member's tags, scores, tiers and due dates and persist them."""
    started = time.perf_counter()
    as_of = (as_of or _now()).replace(tzinfo=None)
    config = config or LayeringConfig.load(workspace)
    run_id = uuid.uuid4().hex
    report = ComputeReport(run_id=run_id, as_of=as_of.isoformat(), engine=engine_name)
    cur = store.con.cursor()
    try:
        _start_run(cur, run_id, as_of, "all", engine_name)
        with WRITE_LOCK, _transaction(cur):
            definitions, versions = sync_definitions(cur, workspace, user)
        # Stages write only this cursor's temp tables: no lock while they run.
        engine = _engine_for(engine_name, cur)
        parameters = run_stages(engine, definitions, config, as_of, progress)
        parameters["tags"] = versions
        if engine_name != "duckdb":
            _bring_back(engine, cur)
        sources = [OUT_TAGS, OUT_SYSTEM_TAGS]
        if any(d.enabled and d.rule.kind == "sql" for d in definitions):
            _run_expert_tags(cur, definitions, as_of, facts_here=engine_name == "duckdb")
            sources.append("cm_expert")
        persist_started = time.perf_counter()
        timings = parameters["timings"]
        with WRITE_LOCK, _transaction(cur):
            with _timed(timings, "persist.collect"):
                _collect_tags(cur, sources, versions)
            # history is stamped with the run's as_of, so a backfill run (as of a past
            # date) places its changes where they happened
            with _timed(timings, "persist.tags"):
                report.tag_changes = _persist_tags(cur, run_id, as_of, False, list(versions))
            with _timed(timings, "persist.scores"):
                _persist_scores(cur, run_id)
            commit_started = time.perf_counter()
        timings["persist.commit"] = round(time.perf_counter() - commit_started, 3)
        report.members = _count(cur, f"SELECT count(*) FROM {facts.MEMBERS}")
        report.tagged = _count(cur, f"SELECT count(*) FROM {ALL_TAGS}")
        report.scores = _count(cur, f"SELECT count(*) FROM {OUT_SCORES}")
        report.due = _count(cur, f"SELECT count(*) FROM {OUT_DUE}")
        parameters["timings"]["persist"] = round(time.perf_counter() - persist_started, 3)
        report.stages = parameters.pop("timings")
        report.parameters = parameters
        report.seconds = round(time.perf_counter() - started, 3)
        _finish_run(cur, run_id, "done", report.members, {**parameters, "stages": report.stages})
    except BaseException:
        _finish_run(cur, run_id, "failed")
        raise
    finally:
        _drop_work(cur)
        cur.close()
    return report


@contextmanager
def _timed(timings: dict[str, float], label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[label] = round(time.perf_counter() - started, 3)


@contextmanager
def _transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def _run_expert_tags(
    cur: duckdb.DuckDBPyConnection,
    definitions: list[TagDefinition],
    as_of: datetime,
    *,
    facts_here: bool,
) -> None:
    """`cm_expert`: the SQL (expert) tags, run on DuckDB over the member facts."""
    if not facts_here:  # a Spark run: the facts are materialised on DuckDB for them
        for pipeline in facts.fact_steps(as_of):
            DuckDBEngine(cur).run_pipeline(list(pipeline), pipeline[-1].output_table_name)
    cur.register("cm_expert_arrow", _expert_tags(cur, definitions, as_of))
    cur.execute("CREATE OR REPLACE TEMP TABLE cm_expert AS SELECT * FROM cm_expert_arrow")
    cur.unregister("cm_expert_arrow")


def refresh_event_tags(
    cur: duckdb.DuckDBPyConnection,
    one_ids: Iterable[str],
    *,
    workspace: Path | None = None,
    as_of: datetime | None = None,
) -> int:
    """Recompute the event-refresh tags of a few persons inside the caller's transaction (the
    stream path). The caller holds `WRITE_LOCK` around that transaction, so a full run's
    rewrite never conflicts with it. Returns the number of tag changes."""
    ids = sorted({str(i) for i in one_ids})
    if not ids:
        return 0
    as_of = (as_of or _now()).replace(tzinfo=None)
    versions = dict(
        cur.execute(
            "SELECT tag_id, version FROM tag_definitions WHERE enabled AND refresh = 'event'"
        ).fetchall()
    )
    definitions = [
        d
        for d in all_definitions(cur, workspace)
        if d.tag_id in versions and d.enabled and d.rule.kind != "sql"
    ]
    if not definitions:
        return 0
    versions = {d.tag_id: int(versions[d.tag_id]) for d in definitions}
    engine = DuckDBEngine(cur)
    cur.register(SCOPE, pa.table({"one_id": pa.array(ids, pa.string())}))
    try:
        for pipeline in facts.fact_steps(as_of, scope=SCOPE):
            engine.run_pipeline(list(pipeline), pipeline[-1].output_table_name)
        engine.run_pipeline(tags.tag_steps(definitions, as_of), OUT_TAGS)
        _collect_tags(cur, [OUT_TAGS], versions)
        changes = _persist_tags(cur, "event:" + uuid.uuid4().hex, _now(), True, list(versions))
    finally:
        for name in (*facts.FACT_TABLES, OUT_TAGS, ALL_TAGS):
            engine.drop(name)
        cur.unregister(TAG_VERSIONS)
        cur.unregister(SCOPE)
    return changes

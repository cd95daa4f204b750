"""Hand-made members and facts for the RFM, behaviour and cycle tests: canonical rows
(profiles, identity_records, catalog, orders, treatments, interactions, events) in a real
in-memory DuckDB, then the member facts (`fact_steps`) materialised as a run would."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from mecdp.compute import facts
from mecdp.store.duckdb_store import migrate
from mecdp.store.engine import DuckDBEngine, Engine, SqlStep

# (item_code, name, category, price_yuan, price_band, luxury, repeat_cycle_days)
CATALOG = (
    ("INJ001", "玻尿酸填充", "注射", 6800, "high", False, 270),
    ("INJ002", "肉毒素除皱", "注射", 2980, "mid", False, 150),
    ("INJ005", "童颜针", "注射", 16800, "luxury", True, 365),
    ("LAS001", "热玛吉", "光电", 19800, "luxury", True, 365),
    ("LAS003", "光子嫩肤 IPL", "光电", 880, "entry", False, 25),
    ("LAS005", "激光脱毛", "光电", 680, "entry", False, 40),
    ("SUR001", "双眼皮手术", "手术", 12800, "high", False, None),
    ("SKN001", "小气泡清洁", "皮肤管理", 298, "entry", False, 21),
    ("SKN009", "定制护理", "皮肤管理", 500, "entry", False, None),
    ("XYZ001", "新项目", "其他", 100, "entry", False, None),
    ("PRD001", "医用面膜", "产品", 198, "entry", False, 45),
)
CATEGORY = {c[0]: c[2] for c in CATALOG}


def t(when: str) -> datetime:
    return datetime.fromisoformat(when)


@dataclass
class Facts:
    con: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect)
    _n: int = 0

    def __post_init__(self) -> None:
        migrate(self.con)
        self.con.executemany(
            "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(c[0], c[1], c[2], c[3] * 100, c[4], c[5], c[6]) for c in CATALOG],
        )
        self.con.execute(
            "INSERT INTO sources VALUES ('app', 'app', 'app', 'events', NULL, 'wk_app', "
            "TIMESTAMP '2020-01-01')"
        )

    def _record(self, one_id: str, kind: str) -> str:
        self._n += 1
        record_id = f"{kind}:{self._n:05d}"
        self.con.execute("INSERT INTO identity_records VALUES (?, ?)", [record_id, one_id])
        return record_id

    def member(self, one_id: str, first_seen: str | None = "2020-01-01") -> str:
        self.con.execute(
            "INSERT INTO profiles (one_id, first_seen, orders, visits, total_spend_fen, records, "
            "built_at) VALUES (?, ?, 0, 0, 0, 1, TIMESTAMP '2025-01-01')",
            [one_id, t(first_seen) if first_seen else None],
        )
        return one_id

    def order(
        self,
        one_id: str,
        when: str,
        paid_yuan: float,
        *,
        item: str = "SKN001",
        promo: bool = False,
        order_type: str = "normal",
        sessions: int | None = None,
        order_no: str | None = None,
        status: str | None = "paid",
    ) -> str:
        record_id = self._record(one_id, "order")
        self.con.execute(
            "INSERT INTO orders (record_id, source_id, order_no, channel, ordered_at, item_code, "
            "category, quantity, amount_fen, paid_fen, promo, order_type, sessions, status, "
            "ingested_at) VALUES (?, 'pos', ?, 'pos', ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
            [
                record_id,
                order_no or record_id,
                t(when),
                item,
                CATEGORY.get(item),
                round(paid_yuan * 100),
                round(paid_yuan * 100),
                promo,
                order_type,
                sessions,
                status,
                t(when),
            ],
        )
        return record_id

    def treatment(
        self, one_id: str, when: str, item: str | None, *, item_name: str | None = None
    ) -> str:
        record_id = self._record(one_id, "treatment")
        self.con.execute(
            "INSERT INTO treatments (record_id, source_id, treatment_no, item_code, item_name, "
            "category, performed_at, ingested_at) VALUES (?, 'his', ?, ?, ?, ?, ?, ?)",
            [record_id, record_id, item, item_name, CATEGORY.get(item or ""), t(when), t(when)],
        )
        return record_id

    def interaction(self, one_id: str, when: str, channel: str, *, topic: str | None = None) -> str:
        record_id = self._record(one_id, "interaction")
        self.con.execute(
            "INSERT INTO interactions (record_id, source_id, interaction_no, channel, type, "
            "topic, occurred_at, ingested_at) VALUES (?, 'cs', ?, ?, 'chat', ?, ?, ?)",
            [record_id, record_id, channel, topic, t(when), t(when)],
        )
        return record_id

    def event(
        self, one_id: str, when: str, *, channel: str | None = None, type_: str = "track"
    ) -> str:
        record_id = self._record(one_id, "event")
        self.con.execute(
            "INSERT INTO events (record_id, source_id, message_id, type, event, channel, "
            "occurred_at, received_at) VALUES (?, 'app', ?, ?, 'view', ?, ?, ?)",
            [record_id, record_id, type_, channel, t(when), t(when)],
        )
        return record_id

    def engine(self, as_of: datetime) -> DuckDBEngine:
        """A DuckDB engine over the store with the member facts as of `as_of` materialised."""
        engine = DuckDBEngine(self.con)
        materialise_facts(engine, as_of)
        return engine


def materialise_facts(engine: Engine, as_of: datetime) -> None:
    for pipeline in facts.fact_steps(as_of):
        engine.run_pipeline(list(pipeline), pipeline[-1].output_table_name)


def run(engine: Engine, pipelines: Sequence[tuple[Sequence[SqlStep], str]]) -> None:
    for steps, output in pipelines:
        engine.run_pipeline(steps, output)


def rows(engine: Engine, table: str, key: str = "one_id") -> dict[Any, dict[str, Any]]:
    """The table's rows keyed by `key`."""
    return {r[key]: r for r in engine.fetch_arrow(f"SELECT * FROM {table}").to_pylist()}

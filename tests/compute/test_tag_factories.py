"""A hand-made clinic for tag tests: canonical rows (profiles, identity_records, catalog,
orders, appointments, treatments, interactions, events) in an in-memory store, and the
member facts built from them with `fact_steps`. No tests here; the tag tests import it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb

from mecdp.compute import facts, tags
from mecdp.compute.tag_rules import TagDefinition
from mecdp.store.duckdb_store import migrate
from mecdp.store.engine import DuckDBEngine, Engine

AS_OF = datetime(2025, 6, 30, 10, 0)

# item_code: (name, category, price_fen, price_band, luxury, repeat_cycle_days)
CATALOG: dict[str, tuple[str, str, int, str, bool, int | None]] = {
    "HA01": ("玻尿酸填充", "注射", 380000, "high", False, 270),
    "BTX01": ("肉毒素除皱", "注射", 180000, "mid", False, 150),
    "THM01": ("热玛吉", "光电", 1500000, "luxury", True, 365),
    "IPL01": ("光子嫩肤", "光电", 80000, "entry", False, 28),
    "SUR01": ("双眼皮手术", "手术", 1200000, "high", False, None),
    "SKN01": ("小气泡清洁", "皮肤管理", 30000, "entry", False, 30),
    "PRD01": ("修复面膜", "产品", 20000, "entry", False, None),
    "LUXP": ("奢华面霜", "产品", 500000, "luxury", True, None),
}
# The canonical tables the facts read (registered on Spark for the parity test).
INPUT_TABLES = facts.INPUT_TABLES


def ago(days: int, hour: int = 10) -> datetime:
    """`hour` o'clock in China (UTC+8), `days` days before AS_OF's day there, as the UTC
    time the store keeps (AS_OF, 10:00 UTC, is 18:00 on 2025-06-30 in China)."""
    day = (AS_OF + timedelta(hours=8)).date() - timedelta(days=days)
    return datetime.combine(day, time(hour)) - timedelta(hours=8)


class Clinic:
    """Members and their facts, written as the earlier stages write them."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        migrate(self.con)
        self._n = 0
        for code, (name, category, price, band, luxury, cycle) in CATALOG.items():
            self.con.execute(
                "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?)",
                [code, name, category, price, band, luxury, cycle],
            )
        self.con.execute(
            "INSERT INTO sources VALUES ('pos', 'POS', 'pos', 'orders', NULL, 'wk_pos', ?)",
            [datetime(2024, 1, 1)],
        )

    def member(
        self,
        one_id: str,
        *,
        birthday: date | None = None,
        gender: str | None = "F",
        city: str | None = "上海",
        first_order_at: datetime | None = None,
    ) -> str:
        self.con.execute(
            "INSERT INTO profiles (one_id, gender, birthday, city, home_store, member_level, "
            "first_seen, last_seen, first_order_at, orders, visits, total_spend_fen, records, "
            "built_at) VALUES (?, ?, ?, ?, 'SH01', 'regular', ?, ?, ?, 0, 0, 0, 1, ?)",
            [one_id, gender, birthday, city, ago(800), AS_OF, first_order_at, AS_OF],
        )
        return one_id

    def _record(self, one_id: str, kind: str) -> str:
        self._n += 1
        record_id = f"{kind}:{self._n:05d}"
        self.con.execute("INSERT INTO identity_records VALUES (?, ?)", [record_id, one_id])
        return record_id

    def order(
        self,
        one_id: str,
        when: datetime,
        yuan: int,
        *,
        item: str = "HA01",
        promo: bool = False,
        order_type: str = "normal",
        sessions: int | None = None,
        status: str | None = "paid",
    ) -> str:
        record_id = self._record(one_id, "order")
        self.con.execute(
            "INSERT INTO orders (record_id, source_id, order_no, store_code, channel, ordered_at, "
            "item_code, item_name, category, quantity, amount_fen, paid_fen, promo, order_type, "
            "sessions, status, ingested_at) VALUES (?, 'pos', ?, 'SH01', 'pos', ?, ?, ?, NULL, "
            "1, ?, ?, ?, ?, ?, ?, ?)",
            [
                record_id,
                record_id,
                when,
                item,
                CATALOG[item][0],
                yuan * 100,
                yuan * 100,
                promo,
                order_type,
                sessions,
                status,
                when,
            ],
        )
        return record_id

    def appointment(self, one_id: str, when: datetime, status: str = "arrived") -> str:
        record_id = self._record(one_id, "appt")
        self.con.execute(
            "INSERT INTO appointments (record_id, source_id, appointment_no, store_code, channel, "
            "item_code, item_name, consultant, scheduled_at, arrived_at, status, ingested_at) "
            "VALUES (?, 'his', ?, 'SH01', 'his', 'IPL01', '光子嫩肤', '王顾问', ?, ?, ?, ?)",
            [record_id, record_id, when, when if status == "arrived" else None, status, when],
        )
        return record_id

    def treatment(self, one_id: str, when: datetime, item: str = "HA01") -> str:
        record_id = self._record(one_id, "treat")
        self.con.execute(
            "INSERT INTO treatments (record_id, source_id, treatment_no, store_code, item_code, "
            "item_name, category, doctor, units, performed_at, ingested_at) VALUES "
            "(?, 'his', ?, 'SH01', ?, ?, NULL, '李医生', 1, ?, ?)",
            [record_id, record_id, item, CATALOG[item][0], when, when],
        )
        return record_id

    def interaction(
        self,
        one_id: str,
        when: datetime,
        *,
        channel: str = "wechat",
        type_: str = "comment",
        topic: str | None = None,
    ) -> str:
        record_id = self._record(one_id, "touch")
        self.con.execute(
            "INSERT INTO interactions (record_id, source_id, interaction_no, channel, type, "
            "content, topic, agent, occurred_at, ingested_at) VALUES "
            "(?, 'social', ?, ?, ?, NULL, ?, NULL, ?, ?)",
            [record_id, record_id, channel, type_, topic, when, when],
        )
        return record_id

    def event(self, one_id: str, when: datetime, name: str = "Product Viewed") -> str:
        record_id = self._record(one_id, "event")
        self.con.execute(
            "INSERT INTO events (record_id, source_id, seq, message_id, type, event, user_id, "
            "channel, occurred_at, received_at) VALUES (?, 'pos', NULL, ?, 'track', ?, NULL, "
            "'wechat_mp', ?, ?)",
            [record_id, record_id, name, when, when],
        )
        return record_id

    # --- running -----------------------------------------------------------------------------

    def engine(self, as_of: datetime = AS_OF) -> DuckDBEngine:
        """A DuckDB engine on this store with the member facts as of `as_of` materialised."""
        engine = DuckDBEngine(self.con)
        materialise_facts(engine, as_of)
        return engine

    def inputs(self) -> dict[str, Any]:
        return {
            name: self.con.execute(f"SELECT * FROM {name}").to_arrow_table()
            for name in INPUT_TABLES
        }


def materialise_facts(engine: Engine, as_of: datetime = AS_OF) -> None:
    for pipeline in facts.fact_steps(as_of):
        engine.run_pipeline(list(pipeline), pipeline[-1].output_table_name)


def tag_rows(
    engine: Engine,
    definitions: list[TagDefinition],
    as_of: datetime = AS_OF,
    scope: str | None = None,
) -> dict[str, dict[str, str]]:
    """tag_id -> {one_id: value} as `tag_steps` computes them on `engine`."""
    engine.run_pipeline(tags.tag_steps(definitions, as_of, scope), tags.OUT_TAGS)
    out: dict[str, dict[str, str]] = {}
    for row in engine.fetch_arrow(f"SELECT * FROM {tags.OUT_TAGS}").to_pylist():
        by_member = out.setdefault(row["tag_id"], {})
        assert row["one_id"] not in by_member, f"two values of {row['tag_id']} for a member"
        by_member[row["one_id"]] = row["value"]
    return out


def definition(rule: dict[str, Any], value_type: str = "boolean", **fields: Any) -> TagDefinition:
    """A test definition around `rule`."""
    data = {
        "tag_id": fields.pop("tag_id", "t"),
        "name_zh": "测试",
        "name_en": "Test",
        "category": "test",
        "value_type": value_type,
        "rule": rule,
        **fields,
    }
    return tags.parse_definition(data)

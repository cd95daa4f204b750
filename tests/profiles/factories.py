"""A tiny clinic chain for profile tests: sources, person records and facts, as the
collection and cleaning stages write them, then OneID (deterministic pass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mecdp.config import Settings
from mecdp.identity.plain import ENCRYPTED_TYPES, IDENTIFIER_CONTEXT, identifiers_encrypted
from mecdp.identity.service import resolve_identities
from mecdp.privacy.crypto import blind_index, encrypt_value, load_keyring
from mecdp.store import Store

# source_id -> (channel, mapping, kind)
SOURCES: dict[str, tuple[str, str | None, str]] = {
    "crm_members": ("offline", "member_master", "contacts"),
    "his": ("his", "his_appointments", "appointments"),
    "his_treatments": ("his", "his_treatments", "treatments"),
    "pos": ("pos", "pos_orders", "orders"),
    "douyin_leads": ("douyin", "lead_forms", "interactions"),
    "call_center": ("call_center", "call_center_logs", "interactions"),
    "nps": ("survey", "surveys", "feedback"),
    "mini_program": ("wechat_mp", None, "events"),
}


def _t(when: str) -> datetime:
    return datetime.fromisoformat(when)


@dataclass
class Chain:
    store: Store
    _n: int = 0
    records: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        cur = self.store.cursor()
        for source_id, (channel, mapping, kind) in SOURCES.items():
            cur.execute(
                "INSERT OR IGNORE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                [source_id, source_id, channel, kind, mapping, f"wk_{source_id}", _t("2024-01-01")],
            )
        cur.execute(
            "INSERT OR IGNORE INTO stores VALUES ('SH01', '上海静安店', '上海', NULL), "
            "('BJ01', '北京国贸店', '北京', NULL)"
        )

    def _id(self, source: str) -> str:
        self._n += 1
        return f"{source}:r{self._n:04d}"

    def person(
        self,
        source: str,
        when: str,
        *,
        kind: str = "contacts",
        record_id: str | None = None,
        name: str | None = None,
        gender: str | None = None,
        birthday: str | None = None,
        city: str | None = None,
        store_code: str | None = None,
        **ids: str,
    ) -> str:
        """A record describing a person (a contacts row) with its identifiers."""
        record_id = record_id or self._id(source)
        cur = self.store.cursor()
        cur.execute(
            "INSERT INTO contacts (record_id, record_kind, source_id, name, gender, birthday, "
            "city, store_code, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                record_id,
                kind,
                source,
                name,
                gender,
                date.fromisoformat(birthday) if birthday else None,
                city,
                store_code,
                _t(when),
            ],
        )
        self.identifiers(record_id, source, kind, when, **ids)
        return record_id

    def identifiers(self, record_id: str, source: str, kind: str, when: str, **ids: str) -> None:
        cur = self.store.cursor()
        for id_type, value in ids.items():
            stored, token = self._stored(id_type, value)
            cur.execute(
                "INSERT INTO record_identifiers (record_id, record_kind, source_id, id_type, "
                "id_value, id_value_enc, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [record_id, kind, source, id_type, stored, token, _t(when)],
            )

    def _stored(self, id_type: str, value: str) -> tuple[str, str | None]:
        """Phones and emails as the store keeps them: blind index + token once the workspace
        encrypts at rest (privacy phase B), else plain."""
        cur = self.store.cursor()
        if id_type not in ENCRYPTED_TYPES or not identifiers_encrypted(cur, id_type):
            return value, None
        assert self.store.path is not None
        settings = Settings(workspace=self.store.path.parent)
        token = encrypt_value(load_keyring(settings), value, context=IDENTIFIER_CONTEXT)
        return blind_index(settings.key(), id_type, value), token

    def order(
        self,
        when: str,
        amount_yuan: int,
        *,
        item: str = "HA01",
        item_name: str = "玻尿酸填充",
        store: str = "SH01",
        order_type: str = "normal",
        sessions: int | None = None,
        status: str | None = None,
        **ids: str,
    ) -> str:
        record_id = self._id("pos")
        self.store.cursor().execute(
            "INSERT INTO orders (record_id, source_id, order_no, store_code, channel, ordered_at, "
            "item_code, item_name, category, quantity, amount_fen, paid_fen, promo, order_type, "
            "sessions, status, ingested_at) VALUES (?, 'pos', ?, ?, 'pos', ?, ?, ?, '注射', 1, ?, "
            "?, FALSE, ?, ?, ?, ?)",
            [
                record_id,
                record_id.replace("pos:", "XS"),
                store,
                _t(when),
                item,
                item_name,
                amount_yuan * 100,
                amount_yuan * 100,
                order_type,
                sessions,
                status,
                _t(when),
            ],
        )
        self.identifiers(record_id, "pos", "orders", when, **ids)
        return record_id

    def appointment(
        self,
        when: str,
        status: str,
        *,
        store: str = "SH01",
        consultant: str | None = "王顾问",
        item_name: str = "光子嫩肤",
        **ids: str,
    ) -> str:
        record_id = self._id("his")
        self.store.cursor().execute(
            "INSERT INTO appointments (record_id, source_id, appointment_no, store_code, channel, "
            "item_code, item_name, consultant, scheduled_at, arrived_at, status, ingested_at) "
            "VALUES (?, 'his', ?, ?, 'his', 'IPL01', ?, ?, ?, ?, ?, ?)",
            [
                record_id,
                record_id,
                store,
                item_name,
                consultant,
                _t(when),
                _t(when) if status == "arrived" else None,
                status,
                _t(when),
            ],
        )
        self.identifiers(record_id, "his", "appointments", when, **ids)
        return record_id

    def treatment(self, when: str, *, item: str = "HA01", store: str = "SH01", **ids: str) -> str:
        record_id = self._id("his_treatments")
        self.store.cursor().execute(
            "INSERT INTO treatments (record_id, source_id, treatment_no, store_code, item_code, "
            "item_name, category, doctor, units, performed_at, ingested_at) VALUES "
            "(?, 'his_treatments', ?, ?, ?, '玻尿酸填充', '注射', '李医生', 1, ?, ?)",
            [record_id, record_id, store, item, _t(when), _t(when)],
        )
        self.identifiers(record_id, "his_treatments", "treatments", when, **ids)
        return record_id

    def interaction(
        self, when: str, *, source: str = "call_center", type_: str = "call", **ids: str
    ) -> str:
        record_id = self._id(source)
        channel = SOURCES[source][0]
        self.store.cursor().execute(
            "INSERT INTO interactions (record_id, source_id, interaction_no, channel, type, "
            "content, topic, agent, occurred_at, ingested_at) VALUES (?, ?, ?, ?, ?, NULL, "
            "'价格咨询', NULL, ?, ?)",
            [record_id, source, record_id, channel, type_, _t(when), _t(when)],
        )
        self.identifiers(record_id, source, "interactions", when, **ids)
        return record_id

    def feedback(self, when: str, score: int, **ids: str) -> str:
        record_id = self._id("nps")
        self.store.cursor().execute(
            "INSERT INTO feedback (record_id, source_id, response_no, channel, store_code, "
            "item_code, survey, score, text, submitted_at, ingested_at) VALUES "
            "(?, 'nps', ?, 'survey', 'SH01', NULL, 'nps', ?, '很满意', ?, ?)",
            [record_id, record_id, score, _t(when), _t(when)],
        )
        self.identifiers(record_id, "nps", "feedback", when, **ids)
        return record_id

    def event(self, when: str, name: str = "Product Viewed", **ids: str) -> str:
        record_id = self._id("mini_program")
        self.store.cursor().execute(
            "INSERT INTO events (record_id, source_id, seq, message_id, type, event, user_id, "
            "channel, occurred_at, received_at) VALUES (?, 'mini_program', NULL, ?, 'track', ?, "
            "NULL, 'wechat_mp', ?, ?)",
            [record_id, record_id, name, _t(when), _t(when)],
        )
        self.identifiers(record_id, "mini_program", "events", when, **ids)
        return record_id

    def resolve(self) -> None:
        resolve_identities(self.store, match=False)


def one_id_of(store: Store, record_id: str) -> str:
    row = (
        store.cursor()
        .execute("SELECT one_id FROM identity_records WHERE record_id = ?", [record_id])
        .fetchone()
    )
    assert row is not None, f"{record_id} has no one_id"
    return str(row[0])


def profile_row(store: Store, one_id: str) -> dict[str, Any]:
    cur = store.cursor()
    result = cur.execute("SELECT * FROM profiles WHERE one_id = ?", [one_id])
    names = [d[0] for d in result.description or ()]
    row = result.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def seed_layering(store: Store, one_id: str) -> None:
    """What `mecdp compute` writes for one member, in its tables' shape: three tag definitions,
    the member's tags (沉睡 gained, lost and gained again; 价值分层 高价值; 已过期, a treatment tag
    derived from medical data) with computed_at when the member got the value, a scores row,
    and two treatment due dates (sensitive medical data)."""
    cur = store.cursor()
    cur.execute(
        "INSERT INTO tag_definitions VALUES "
        "('dormant', '沉睡', 'Dormant', NULL, 'crm', 'lifecycle', 'boolean', 'scheduled', "
        " '{\"kind\": \"aggregate\"}', 1, 'shipped', TRUE, TIMESTAMP '2025-01-01', 'test'), "
        "('value_tier', '价值分层', 'Value tier', NULL, 'crm', 'value', 'enum', 'scheduled', "
        " '{\"kind\": \"trait\"}', 1, 'system', TRUE, TIMESTAMP '2025-01-01', 'test'), "
        "('treatment_overdue', '已过期', 'Treatment overdue', NULL, 'crm', 'treatment', "
        " 'boolean', 'scheduled', '{\"kind\": \"system\"}', 1, 'system', TRUE, "
        " TIMESTAMP '2025-01-01', 'test')"
    )
    cur.execute(
        "INSERT INTO customer_tags VALUES "
        "(?, 'dormant', 'true', 1, TIMESTAMP '2025-05-01 02:00:00'), "
        "(?, 'value_tier', 'high_value', 1, TIMESTAMP '2025-06-01 02:00:00.5'), "
        "(?, 'treatment_overdue', 'true', 1, TIMESTAMP '2025-06-01 02:00:00')",
        [one_id, one_id, one_id],
    )
    cur.execute(
        "INSERT INTO customer_tag_history VALUES "
        "(?, 'dormant', 'gained', 'true', NULL, 1, TIMESTAMP '2025-03-01 02:00:00', 'r1'), "
        "(?, 'dormant', 'lost', NULL, 'true', 1, TIMESTAMP '2025-04-01 02:00:00', 'r2'), "
        "(?, 'dormant', 'gained', 'true', NULL, 1, TIMESTAMP '2025-05-01 02:00:00', 'r3')",
        [one_id, one_id, one_id],
    )
    cur.execute(
        "INSERT INTO scores (one_id, as_of, recency_days, frequency, monetary_fen, r_score, "
        "f_score, m_score, rfm_segment, value_tier, p_alive, expected_purchases_90, "
        "expected_purchases_180, expected_purchases_365, expected_value_365_fen, clv_12m_fen, "
        "purchase_tier, interaction_tier, interaction_channels, interactions_90d, "
        "preferred_category, run_id) VALUES (?, TIMESTAMP '2025-06-01', 395, 3, 1580000, 1, 3, "
        "5, 'important_retain', 'high_value', 0.42, 0.1, 0.2, 0.4, 250000.5, 260000.25, "
        "'course', 'low', 2, 1, '注射', 'r3')",
        [one_id],
    )
    cur.execute(
        "INSERT INTO treatment_due VALUES "
        "(?, 'HA01', '玻尿酸填充', '注射', TIMESTAMP '2024-04-10 11:00:00', 270, "
        " DATE '2025-01-05', 'overdue', 'r3'), "
        "(?, 'BTX01', '肉毒素除皱', '注射', TIMESTAMP '2025-03-01 11:00:00', 150, "
        " DATE '2025-07-29', 'upcoming', 'r3')",
        [one_id, one_id],
    )

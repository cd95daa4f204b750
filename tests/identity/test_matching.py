"""How scored pairs become decisions: thresholds, unique conflicts, consent conflicts, and
rejections that are never proposed again."""

from __future__ import annotations

from pathlib import Path

from identity.factories import Records, one_id

from mecdp.identity.config import IdentityRules
from mecdp.identity.matching import PROFILE_TABLE, _record_pairs
from mecdp.identity.service import pair_id_of, resolve_identities
from mecdp.store import Store


def _score(store: Store, pairs: list[tuple[str, str, float]]) -> dict[str, str]:
    """Feed scored record pairs as the Splink step would; returns pair_id -> status."""
    cur = store.cursor()
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE {PROFILE_TABLE} AS "
        "SELECT one_id AS unique_id, min(record_id) AS record_id FROM identity_records "
        "GROUP BY one_id"
    )
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE oneid_predictions (one_id_l VARCHAR, one_id_r VARCHAR, "
        "match_weight DOUBLE, match_probability DOUBLE, gamma_name INT, gamma_birthday INT, "
        "gamma_gender INT, gamma_city INT, gamma_store_code INT, gamma_phone4 INT, "
        "gamma_email_user INT)"
    )
    for a, b, p in pairs:
        cur.execute(
            "INSERT INTO oneid_predictions VALUES (?, ?, 10, ?, 3, 2, 1, 1, 1, 1, -1)",
            [one_id(store, a), one_id(store, b), p],
        )
    _record_pairs(cur, IdentityRules.load(), trained=False)
    return dict(cur.execute("SELECT pair_id, status FROM identity_match_pairs").fetchall())


def test_thresholds_unique_conflicts_and_consent(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(name="张丽", member_no="M1")
    b = records.add(name="张莉", phone="+8613700000001")
    c = records.add(name="王芳", member_no="M2")
    d = records.add(name="王芳", member_no="M3")
    e = records.add(name="李娜", phone="+8613700000002")
    f = records.add(name="李娜", email="ln@qq.com")
    g = records.add(name="赵敏", phone="+8613700000003")
    h = records.add(name="赵敏", email="zm@qq.com")
    resolve_identities(store, workspace=workspace, match=False)
    cur = store.cursor()
    for ref, status in ((one_id(store, e), "granted"), (one_id(store, f), "withdrawn")):
        cur.execute(
            "INSERT INTO consents (consent_id, member_ref, purpose, channel, status, "
            "notice_version, notice_sha256, source, occurred_at, recorded_at, recorded_by) "
            "VALUES (?, ?, 'marketing', 'sms', ?, 'v1', 'x', 'api', now(), now(), 'test')",
            [f"c-{ref}", f"one_id:{ref}", status],
        )
    found = _score(store, [(a, b, 0.999), (c, d, 0.999), (e, f, 0.999), (g, h, 0.9)])
    assert found == {
        pair_id_of(a, b): "auto",
        pair_id_of(c, d): "blocked",  # two member numbers
        pair_id_of(e, f): "pending",  # consent states differ
        pair_id_of(g, h): "pending",  # between the thresholds
    }


def test_a_rejected_pair_is_never_proposed_again(
    store: Store, workspace: Path, records: Records
) -> None:
    a = records.add(name="赵敏", phone="+8613700000003")
    b = records.add(name="赵敏", email="zm@qq.com")
    resolve_identities(store, workspace=workspace, match=False)
    cur = store.cursor()
    _score(store, [(a, b, 0.9)])
    cur.execute("UPDATE identity_match_pairs SET status = 'rejected'")
    # The same two persons come back under other representative records.
    c = records.add("aaa:1", name="赵敏", phone="+8613700000003", when="2020-01-01 00:00:00")
    resolve_identities(store, workspace=workspace, match=False)
    assert one_id(store, c) == one_id(store, a)
    statuses = _score(store, [(c, b, 0.95)])
    assert list(statuses.values()) == ["rejected"]

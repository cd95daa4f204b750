"""clean_records on DuckDB: what a data engineer sees after an import."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from clean.factories import dirty_batch
from clean.helpers import TEST_KEY

from mecdp.clean.kinds import RECORD_KINDS
from mecdp.clean.stage import CleanOptions, CleanOutputs, clean_records
from mecdp.errors import InputError
from mecdp.store.duckdb_store import open_store
from mecdp.store.engine import DuckDBEngine, Engine

OPTIONS = CleanOptions(source_id="pos_sh", hash_key=TEST_KEY)


def staged(engine: Engine, rows: list[dict[str, Any]], name: str = "staged") -> str:
    columns = sorted({k for r in rows for k in r})
    table = {
        "_row": pa.array(range(1, len(rows) + 1), pa.int64()),
        "_ref": [f"orders.csv:{i + 1}" for i in range(len(rows))],
    }
    for c in columns:
        table[c] = pa.array([r.get(c) for r in rows], pa.string())
    engine.register_arrow(name, pa.table(table))
    return name


def fetch(engine: Engine, table: str, order: str = "_row") -> list[dict[str, Any]]:
    return engine.fetch_arrow(f"SELECT * FROM {table} ORDER BY {order}").to_pylist()


@pytest.fixture
def engine() -> DuckDBEngine:
    return DuckDBEngine(duckdb.connect())


GOOD = {
    "order_no": "SO1",
    "ordered_at": "2024/3/5 14:30",
    "amount": "¥1,280.00",
    "phone": "138 1234 5678",
    "name": "张 三",
    "channel": "门店",
}


def test_bad_row_rejected_with_reason_good_rows_kept(engine: DuckDBEngine) -> None:
    rows = [GOOD, {**GOOD, "order_no": "SO2", "phone": "1381234"}, {**GOOD, "order_no": "SO3"}]
    out = clean_records(engine, RECORD_KINDS["orders"], staged(engine, rows), OPTIONS, "imp")
    records = fetch(engine, out.records)
    assert [r["order_no"] for r in records] == ["SO1", "SO3"]
    assert records[0]["record_id"] == "pos_sh:SO1"
    assert records[0]["amount_fen"] == 128000
    assert str(records[0]["ordered_at"]) == "2024-03-05 06:30:00"
    assert records[0]["observed_at"] == records[0]["ordered_at"]
    assert records[0]["channel"] == "pos"
    assert fetch(engine, out.rejects) == [
        {
            "_row": 2,
            "_ref": "orders.csv:2",
            "field": "phone",
            "value": "1381234",
            "rule": "phone.invalid",
            "reason": "field 'phone': value '1381234' is not a valid phone number (phone.invalid)",
        }
    ]
    contacts = fetch(engine, out.contacts, "record_id")
    assert [(c["record_id"], c["name"]) for c in contacts] == [
        ("pos_sh:SO1", "张三"),
        ("pos_sh:SO3", "张三"),
    ]
    ids = fetch(engine, out.identifiers, "record_id")
    assert {(i["record_id"], i["id_type"], i["id_value"]) for i in ids} == {
        ("pos_sh:SO1", "phone", "+8613812345678"),
        ("pos_sh:SO3", "phone", "+8613812345678"),
    }


def test_records_match_the_kind_table_columns(engine: DuckDBEngine) -> None:
    out = clean_records(engine, RECORD_KINDS["orders"], staged(engine, [GOOD]), OPTIONS, "o")
    columns = engine.columns(out.records)
    assert columns[:3] == ["record_id", "_row", "_ref"]
    assert columns[-2:] == ["source_id", "observed_at"]
    table_columns = [d[0] for d in duckdb.connect().execute("SELECT 1").description]
    assert table_columns  # the migrated orders table takes the records by name:
    store = open_store(None)
    store_engine = DuckDBEngine(store.con)
    out = clean_records(
        store_engine, RECORD_KINDS["orders"], staged(store_engine, [GOOD]), OPTIONS, "o"
    )
    store.con.execute(
        f"INSERT INTO orders BY NAME SELECT * EXCLUDE (_row, _ref, observed_at), "
        f"now()::TIMESTAMP AS ingested_at FROM {out.records}"
    )
    assert store.con.execute("SELECT amount_fen FROM orders").fetchall() == [(128000,)]
    store.con.execute(f"INSERT INTO contacts BY NAME SELECT * FROM {out.contacts}")
    store.con.execute(f"INSERT INTO record_identifiers BY NAME SELECT * FROM {out.identifiers}")


def test_same_input_gives_same_record_ids(engine: DuckDBEngine) -> None:
    rows = [
        {"contact_no": "M1", "phone": "13812345678"},
        {"contact_no": "", "phone": "13812345678"},
        {"contact_no": " ", "phone": "13812345679"},
    ]
    kind = RECORD_KINDS["contacts"]
    first = fetch(engine, clean_records(engine, kind, staged(engine, rows), OPTIONS, "a").records)
    again = fetch(engine, clean_records(engine, kind, staged(engine, rows), OPTIONS, "b").records)
    assert [r["record_id"] for r in first] == [r["record_id"] for r in again]
    assert first[0]["record_id"] == "pos_sh:M1"
    # no contact number: a hash of the row's raw values, different rows -> different ids
    assert first[1]["record_id"].startswith("pos_sh:") and len(first[1]["record_id"]) == 71
    assert len({r["record_id"] for r in first}) == 3


def test_order_without_required_fields_or_identifier_is_rejected(engine: DuckDBEngine) -> None:
    rows = [
        {"order_no": "SO9", "ordered_at": "", "amount": "12"},
        {"order_no": "SO10", "ordered_at": "2024-03-05", "amount": "12"},
    ]
    out = clean_records(engine, RECORD_KINDS["orders"], staged(engine, rows), OPTIONS, "r")
    assert engine.count(out.records) == 0
    rejects = {(r["_row"], r["rule"]): r["reason"] for r in fetch(engine, out.rejects)}
    assert rejects[(1, "timestamp.required")] == (
        "field 'ordered_at' is required but empty (timestamp.required)"
    )
    assert (2, "record.no_identifier") in rejects
    assert (1, "record.no_identifier") in rejects


def test_duplicate_record_ids_keep_the_first_row(engine: DuckDBEngine) -> None:
    rows = [{**GOOD, "amount": "1"}, {**GOOD, "amount": "2"}, {**GOOD, "amount": "x"}]
    out = clean_records(engine, RECORD_KINDS["orders"], staged(engine, rows), OPTIONS, "d")
    assert [(r["_row"], r["amount_fen"]) for r in fetch(engine, out.records)] == [(1, 100)]
    assert engine.count(out.contacts) == 1
    assert engine.count(out.identifiers) == 1
    assert [r["rule"] for r in fetch(engine, out.rejects)] == ["money.invalid"]


def test_one_identifier_per_value_and_type(engine: DuckDBEngine) -> None:
    rows = [{**GOOD, "phone2": "13812345678"}, {**GOOD, "order_no": "SO2", "phone2": "13900001111"}]
    out = clean_records(engine, RECORD_KINDS["orders"], staged(engine, rows), OPTIONS, "p")
    ids = [(i["record_id"], i["id_value"]) for i in fetch(engine, out.identifiers, "id_value")]
    assert sorted(ids) == [
        ("pos_sh:SO1", "+8613812345678"),
        ("pos_sh:SO2", "+8613812345678"),
        ("pos_sh:SO2", "+8613900001111"),
    ]


def test_id_card_never_stored_plain(engine: DuckDBEngine) -> None:
    good, bad = "11010519491231002X", "110105194912310021"
    rows = [{**GOOD, "id_card": good}, {**GOOD, "order_no": "SO2", "id_card": bad}]
    out = clean_records(engine, RECORD_KINDS["orders"], staged(engine, rows), OPTIONS, "i")
    for table in (out.records, out.contacts, out.identifiers, out.rejects):
        dump = json.dumps(fetch(engine, table, "1"), default=str, ensure_ascii=False)
        assert good not in dump and bad not in dump
        assert good[:-1] not in dump and bad[:-1] not in dump
    reject = fetch(engine, out.rejects)[0]
    assert reject["value"] == "1101**********0021"
    hashes = [
        i for i in fetch(engine, out.identifiers, "id_type") if i["id_type"] == "id_card_hash"
    ]
    assert len(hashes) == 1 and len(hashes[0]["id_value"]) == 64


def test_defaults_wechat_openid_and_ignored_columns(engine: DuckDBEngine) -> None:
    rows = [
        {"contact_no": "M1", "wechat_openid": "oAbc", "wechat_appid": "wx1", "unknown_col": "x"},
        {"contact_no": "M2", "wechat_openid": "oDef"},
    ]
    options = CleanOptions("crm", TEST_KEY, defaults={"store_code": "sh01"})
    out = clean_records(engine, RECORD_KINDS["contacts"], staged(engine, rows), options, "c")
    ids = {(i["record_id"], i["id_value"]) for i in fetch(engine, out.identifiers, "record_id")}
    assert ids == {("crm:M1", "wx1:oAbc"), ("crm:M2", "oDef")}
    assert {c["store_code"] for c in fetch(engine, out.contacts, "record_id")} == {"SH01"}
    assert "unknown_col" not in engine.columns(out.records)


def test_bad_options_are_input_errors(engine: DuckDBEngine) -> None:
    name = staged(engine, [GOOD])
    kind = RECORD_KINDS["orders"]
    with pytest.raises(InputError, match="money unit"):
        clean_records(engine, kind, name, CleanOptions("s", TEST_KEY, money_unit="cny"), "x")
    with pytest.raises(InputError, match="nope"):
        clean_records(engine, kind, name, CleanOptions("s", TEST_KEY, defaults={"nope": "1"}), "x")


@pytest.mark.parametrize("kind", ["orders", "contacts"])
def test_dirty_batch_every_row_accounted_for(engine: DuckDBEngine, kind: str) -> None:
    engine.register_arrow("dirty", dirty_batch(kind, 300))
    out: CleanOutputs = clean_records(engine, RECORD_KINDS[kind], "dirty", OPTIONS, "z")
    rejected = engine.fetch_arrow(f"SELECT DISTINCT _row FROM {out.rejects}").num_rows
    accepted = engine.fetch_arrow(f"SELECT DISTINCT _row FROM {out.records}").num_rows
    dup_rows = 300 - rejected - accepted
    assert accepted > 20 and rejected > 20 and dup_rows >= 0
    both = engine.fetch_arrow(
        f"SELECT _row FROM {out.records} INTERSECT SELECT _row FROM {out.rejects}"
    ).num_rows
    assert both == 0


def test_anonymous_interactions_are_kept_without_a_profile(engine: DuckDBEngine) -> None:
    rows = [
        {"interaction_no": "S1", "channel": "官网", "type": "咨询", "occurred_at": "2024-03-05"},
        {
            "interaction_no": "S2",
            "channel": "官网",
            "type": "咨询",
            "occurred_at": "2024-03-06",
            "phone": "13812345678",
        },
    ]
    kind = RECORD_KINDS["interactions"]
    out = clean_records(engine, kind, staged(engine, rows), OPTIONS, "a")
    assert engine.count(out.records) == 2
    assert engine.count(out.rejects) == 0
    ids = fetch(engine, out.identifiers, order="record_id")
    assert [r["record_id"] for r in ids] == [f"{OPTIONS.source_id}:S2"]

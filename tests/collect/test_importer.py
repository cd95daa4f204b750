"""The import service end to end: real DuckDB workspace in tmp_path, every format."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mecdp.collect.importer import ImportReport, import_file
from mecdp.collect.sources import add_source
from mecdp.config import Settings, init_workspace
from mecdp.errors import InputError
from mecdp.privacy.vault import CTX_NAME, plain_contacts, read_quarantine, vault_for
from mecdp.store import open_store
from mecdp.store.duckdb_store import Store

FIXTURES = Path(__file__).parent / "fixtures"
MAPPING = str(FIXTURES / "clinic_orders.yaml")
HEADERS = ["订单号", "手机号", "姓名", "消费金额", "项目", "门店", "到店时间"]
# Valid resident id-card numbers (checksums correct) and one with a bad checksum.
ID_CARD = "11010519491231002X"
BAD_ID_CARD = "110105194912310021"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(workspace=tmp_path / "ws")
    init_workspace(settings)
    return settings


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings.db_path)
    add_source(store.cursor(), "pos_sh", channel="pos", kind="orders", mapping=MAPPING)
    yield store
    store.close()


def write_csv(
    path: Path, rows: list[list[str]], *, headers: list[str] = HEADERS, encoding: str = "utf-8"
) -> Path:
    text = "\n".join(",".join(r) for r in [headers, *rows]) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


def order(
    no: str, *, phone: str = "13800138000", amount: str = "1280.00", at: str = "2024-03-05 14:30:00"
) -> list[str]:
    return [no, phone, "张三", amount, "水光针", "SH01", at]


def counts(store: Store) -> dict[str, int]:
    cur = store.cursor()
    tables = [
        "orders",
        "contacts",
        "record_identifiers",
        "quarantine",
        "file_imports",
        "ingest_log",
    ]
    result = {}
    for table in tables:
        row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        result[table] = int(row[0])
    return result


def run(store: Store, settings: Settings, path: Path, **kwargs: object) -> ImportReport:
    return import_file(store, settings, path, source_id="pos_sh", **kwargs)  # type: ignore[arg-type]


def test_gbk_csv_with_chinese_headers(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "门店订单.csv", [order("A1"), order("A2", phone="13900139000")], encoding="gbk"
    )
    report = run(store, settings, path)
    assert (report.file_format, report.encoding) == ("csv", "gb18030")
    assert (report.rows_read, report.accepted, report.quarantined, report.duplicates) == (
        2,
        2,
        0,
        0,
    )
    rows = (
        store.cursor()
        .execute(
            "SELECT order_no, amount_fen, store_code, item_name, channel, ingested_at IS NOT NULL "
            "FROM orders ORDER BY order_no"
        )
        .fetchall()
    )
    assert rows == [
        ("A1", 128000, "SH01", "水光针", "pos", True),
        ("A2", 128000, "SH01", "水光针", "pos", True),
    ]
    names = set(plain_contacts(store.cursor(), settings).column("name").to_pylist())
    assert names == {"张三"}
    stored = store.cursor().execute("SELECT DISTINCT name FROM contacts").fetchall()
    assert all(str(n).startswith("e1:") for (n,) in stored)  # encrypted at rest
    ids = (
        store.cursor()
        .execute("SELECT count(*) FROM record_identifiers WHERE id_type = 'phone'")
        .fetchone()
    )
    assert ids == (2,)
    raw = settings.raw_files_dir
    assert [p.suffixes for p in raw.iterdir() if not p.name.startswith(".")] == [[".csv", ".enc"]]
    logged = (
        store.cursor()
        .execute("SELECT origin, received, accepted, quarantined, duplicates FROM ingest_log")
        .fetchall()
    )
    assert logged == [("file", 2, 2, 0, 0)]


def test_utf8_bom_csv(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    write_csv(path, [order("B1")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    report = run(store, settings, path)
    assert (report.encoding, report.accepted) == ("utf-8", 1)


def test_xlsx_with_excel_dates(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADERS)
    sheet.append(
        ["X1", 13800138000, "张三", 1280, "水光针", "SH01", dt.datetime(2024, 3, 5, 14, 30)]
    )
    sheet.append(["X2", "13900139000", "李四", 99.5, "热玛吉", "SH02", dt.datetime(2024, 3, 6)])
    book.save(path)
    report = run(store, settings, path)
    assert (report.file_format, report.accepted, report.quarantined) == ("xlsx", 2, 0)
    rows = (
        store.cursor()
        .execute("SELECT order_no, amount_fen, ordered_at IS NOT NULL FROM orders ORDER BY 1")
        .fetchall()
    )
    assert rows == [("X1", 128000, True), ("X2", 9950, True)]


def test_jsonl_malformed_line_is_quarantined(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "orders.jsonl"
    good = {"订单号": "J1", "手机号": "13800138000", "消费金额": "88", "到店时间": "2024-03-05"}
    path.write_text(
        json.dumps(good, ensure_ascii=False)
        + "\n"
        + '{"订单号": "J2", "消费金额": 12,\n'
        + json.dumps({**good, "订单号": "J3"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    report = run(store, settings, path)
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 2, 1)
    assert report.rejects_by_rule == {"file.malformed_line": 1}
    [sample] = report.sample_rejects
    assert sample["row"] == 2
    assert "line 2" in str(sample["reason"])
    ref = store.cursor().execute("SELECT ref, origin FROM quarantine").fetchall()
    assert ref == [("orders.jsonl:2", "file")]


def test_parquet(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(
        pa.table(
            {
                "order_no": ["P1", "P2"],
                "phone": ["013800138000", "13900139000"],
                "amount": pa.array([1280, 99], pa.int64()),
                "ordered_at": pa.array([dt.datetime(2024, 3, 5, 14, 30), dt.datetime(2024, 3, 6)]),
            }
        ),
        path,
    )
    report = run(store, settings, path)
    assert (report.file_format, report.accepted) == ("parquet", 2)


def test_broken_encoding_is_an_input_error(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    head = ",".join(HEADERS).encode("gbk") + b"\n"
    path.write_bytes(head + b"A1,13800138000,\xff\xfe,1,x,SH01,2024-03-05\n")
    before = counts(store)
    with pytest.raises(InputError) as info:
        run(store, settings, path)
    assert info.value.rule == "file.encoding"
    assert info.value.details["line"] == 2
    assert info.value.details["offset"] == len(head) + len("A1,13800138000,")
    assert counts(store) == before


def test_missing_required_column_names_it(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "no_time.csv", [order("M1")[:6]], headers=HEADERS[:6])
    before = counts(store)
    with pytest.raises(InputError) as info:
        run(store, settings, path)
    assert info.value.rule == "file.missing_columns"
    assert "ordered_at" in info.value.message
    assert "到店时间" in info.value.message  # the headers it would accept
    assert "no_time.csv" in info.value.message
    assert counts(store) == before


def test_kind_mismatch_names_both(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [order("K1")])
    with pytest.raises(InputError, match="his_appointments.*appointments.*orders"):
        run(store, settings, path, mapping="his_appointments")


def test_bad_rows_are_quarantined_and_good_rows_kept(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "mixed.csv",
        [order("G1"), order("G2", at="not-a-date"), order("G3"), order("G4", amount="abc")],
        headers=[*HEADERS],
    )
    report = run(store, settings, path)
    assert (report.rows_read, report.accepted, report.quarantined) == (4, 2, 2)
    kept = store.cursor().execute("SELECT order_no FROM orders ORDER BY 1").fetchall()
    assert kept == [("G1",), ("G3",)]
    rows = [
        (q["ref"], q["field"], q["value"], q["rule"], q["reason"], q["payload"])
        for q in read_quarantine(store.cursor(), vault_for(settings))
    ]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("mixed.csv:3", "ordered_at", "not-a-date"),
        ("mixed.csv:5", "amount", "abc"),
    ]
    for _, fld, value, rule, reason, _payload in rows:
        assert rule
        assert value in reason
        assert fld in reason or fld in rule
    payload = json.loads(rows[0][5])
    assert payload["订单号"] == "G2"
    assert payload["到店时间"] == "not-a-date"
    first = report.sample_rejects[0]
    assert (first["row"], first["column"], first["field"]) == (3, "到店时间", "ordered_at")


def test_reimporting_the_same_file_changes_nothing(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "once.csv", [order("R1"), order("R2", amount="x")])
    first = run(store, settings, path)
    before = counts(store)
    again = run(store, settings, path)
    assert again.already_imported and not first.already_imported
    assert again.import_id == first.import_id
    assert counts(store) == before


def test_overlapping_file_counts_duplicates(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    run(store, settings, write_csv(tmp_path / "day1.csv", [order("D1"), order("D2")]))
    report = run(
        store,
        settings,
        write_csv(tmp_path / "day2.csv", [order("D2"), order("D3"), order("D3"), order("D4")]),
    )
    assert (report.rows_read, report.accepted, report.duplicates) == (4, 2, 2)
    stored = counts(store)
    # one order, one contact and one phone per record: the stored D2 is not written again
    assert (stored["orders"], stored["contacts"], stored["record_identifiers"]) == (4, 4, 4)
    assert store.cursor().execute(
        "SELECT received, accepted, duplicates FROM ingest_log ORDER BY logged_at DESC LIMIT 1"
    ).fetchone() == (4, 2, 2)


def test_equal_names_and_phones_in_one_file_are_sealed_once(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    rows = [order("S1"), order("S2"), order("S3", phone="13900139000")]
    run(store, settings, write_csv(tmp_path / "same.csv", rows))
    cur = store.cursor()
    names = cur.execute("SELECT count(DISTINCT name), count(DISTINCT name_bidx) FROM contacts")
    assert names.fetchone() == (1, 1)
    phones = cur.execute(
        "SELECT count(*), count(DISTINCT id_value), count(DISTINCT id_value_enc) "
        "FROM record_identifiers WHERE id_type = 'phone'"
    )
    assert phones.fetchone() == (3, 2, 2)
    vault = vault_for(settings)
    sealed = cur.execute("SELECT DISTINCT name FROM contacts").fetchone()
    assert sealed is not None and vault.open(str(sealed[0]), CTX_NAME) == "张三"


def test_id_card_numbers_never_stored_in_plain_text(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    headers = [*HEADERS, "身份证号", "备注"]
    path = write_csv(
        tmp_path / "ids.csv",
        [
            [*order("I1"), ID_CARD, "ok"],
            [*order("I2"), BAD_ID_CARD, f"copy {BAD_ID_CARD}"],
            [*order("I3", at="bad"), ID_CARD, f"see {ID_CARD}"],
        ],
        headers=headers,
    )
    report = run(store, settings, path)
    assert report.accepted == 1
    cur = store.cursor()
    columns = cur.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
    ).fetchall()
    for table, column in columns:
        hits = cur.execute(
            f'SELECT count(*) FROM "{table}" '
            f'WHERE contains("{column}", ?) OR contains("{column}", ?)',
            [ID_CARD, BAD_ID_CARD],
        ).fetchone()
        assert hits == (0,), f"plain id-card number in {table}.{column}"
    assert all(ID_CARD not in json.dumps(s) for s in report.sample_rejects)
    payloads = {q["ref"]: q["payload"] for q in read_quarantine(cur, vault_for(settings))}
    bad_row, other_row = json.loads(payloads["ids.csv:3"]), json.loads(payloads["ids.csv:4"])
    assert bad_row["身份证号"] == BAD_ID_CARD[:4] + "*" * 10 + BAD_ID_CARD[-4:]
    assert bad_row["备注"] == "copy " + BAD_ID_CARD[:4] + "*" * 10 + BAD_ID_CARD[-4:]
    assert other_row["身份证号"] == ID_CARD[:4] + "*" * 10 + ID_CARD[-4:]
    hashed = cur.execute(
        "SELECT count(*) FROM record_identifiers WHERE id_type = 'id_card_hash'"
    ).fetchone()
    assert hashed == (1,)


def test_progress_reaches_the_total(store: Store, settings: Settings, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    run(
        store,
        settings,
        write_csv(tmp_path / "p.csv", [order("P1"), order("P2")]),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (2, 2)
    assert all(done <= total for done, total in seen)

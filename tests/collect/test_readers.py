"""File readers: every format lands as all-text columns with the row the user sees."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mecdp.collect.readers import (
    RawFile,
    cell_text,
    copy_raw,
    detect_encoding,
    detect_format,
    mask_id_cards,
    read_file,
    scan_file,
)
from mecdp.errors import InputError

HEADERS = ["手机号", "姓名", "消费金额", "项目", "门店", "到店时间"]
ROWS = [
    ["013800138000", "张三", "1,280.00", "水光针", "SH01", "2024/3/5 14:30"],
    ["13900139000", "李四", "99", "热玛吉", "SH02", "2024年3月6日"],
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def landed(con: duckdb.DuckDBPyConnection, raw: RawFile) -> list[tuple[object, ...]]:
    cols = ", ".join(f"c{i}" for i in range(len(raw.headers)))
    return con.execute(
        f"SELECT {raw.row_sql} AS _row, {cols} FROM {raw.table} ORDER BY 1"
    ).fetchall()


def csv_text(rows: list[list[str]], headers: list[str] = HEADERS) -> str:
    return "\n".join(",".join(r) for r in [headers, *rows]) + "\n"


def test_gbk_csv_with_chinese_headers(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "orders.csv"
    rows = [[c.replace(",", "") for c in r] for r in ROWS]
    path.write_bytes(csv_text(rows).encode("gbk"))
    raw = read_file(con, path, "raw")
    assert raw.file_format == "csv"
    assert raw.encoding == "gb18030"
    assert raw.headers == HEADERS
    assert landed(con, raw) == [(2, *rows[0]), (3, *rows[1])]


def test_utf8_bom_csv_keeps_leading_zeros(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "orders.csv"
    rows = [["00123", "张三", "1280", "水光针", "SH01", "2024-03-05"]]
    path.write_bytes(b"\xef\xbb\xbf" + csv_text(rows).encode("utf-8"))
    raw = read_file(con, path, "raw")
    assert raw.encoding == "utf-8"
    assert raw.headers[0] == "手机号"  # no BOM glued to the first header
    assert landed(con, raw) == [(2, *rows[0])]


def test_quoted_multiline_csv_keeps_exact_row_numbers(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,note\n1,"two\nlines"\n\n2,plain\n3,"a,b",extra\n4,last\n', encoding="utf-8")
    raw = read_file(con, path, "raw")
    assert raw.headers == ["id", "note"]
    assert landed(con, raw) == [(2, "1", "two\nlines"), (5, "2", "plain"), (7, "4", "last")]
    assert [(r.row, r.rule) for r in raw.rejects] == [(6, "file.extra_cells")]
    assert raw.rows_read == 4


def test_broken_encoding_names_offset_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    good = "手机号,姓名\n13800138000,张三\n".encode("gbk")
    path.write_bytes(good + b"13900139000,\xff\xff\n")
    with pytest.raises(InputError) as info:
        detect_encoding(path)
    assert info.value.rule == "file.encoding"
    assert info.value.details["offset"] == len(good) + 12
    assert info.value.details["line"] == 3
    assert "broken.csv" in info.value.message
    assert f"byte offset {len(good) + 12}" in info.value.message


def test_xlsx_dates_and_numbers_become_text(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "orders.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([])  # a blank first row: the header is the first non-empty row
    sheet.append(["订单号", "手机号", "消费金额", "下单时间", "生日", "序号"])
    sheet.append(
        ["A1", 13800138000, 1280.5, dt.datetime(2024, 3, 5, 14, 30), dt.date(1990, 1, 2), 45356]
    )
    sheet.append([None, None, None, None, None, None])
    sheet.append(["A2", "013800138000", 99, dt.datetime(2024, 3, 6), None, 7])
    book.save(path)
    raw = read_file(con, path, "raw")
    assert raw.file_format == "xlsx"
    assert raw.headers == ["订单号", "手机号", "消费金额", "下单时间", "生日", "序号"]
    assert landed(con, raw) == [
        (3, "A1", "13800138000", "1280.5", "2024-03-05 14:30:00", "1990-01-02", "45356"),
        (5, "A2", "013800138000", "99", "2024-03-06", None, "7"),
    ]


def test_jsonl_malformed_line_is_a_reject(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(
        '{"order_no": "A1", "phone": 13800138000123456789, "amount": 12.50}\n'
        '{"order_no": "A2", "id_card": "110101199003074514", oops}\n'
        "\n"
        '{"order_no": "A3", "tags": ["vip"], "paid": true}\n',
        encoding="utf-8",
    )
    raw = read_file(con, path, "raw")
    assert raw.headers == ["order_no", "phone", "amount", "tags", "paid"]
    assert landed(con, raw) == [
        (1, "A1", "13800138000123456789", "12.50", None, None),
        (4, "A3", None, None, '["vip"]', "true"),
    ]
    [reject] = raw.rejects
    assert (reject.row, reject.rule) == (2, "file.malformed_line")
    assert "line 2" in reject.reason
    assert "110101199003074514" not in reject.raw
    assert "1101**********4514" in reject.raw


def test_parquet_columns_are_text(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "orders.parquet"
    table = pa.table(
        {
            "order_no": ["A1", "A2"],
            "phone": ["013800138000", None],
            "amount_fen": pa.array([128000, 9900], pa.int64()),
            "ordered_at": pa.array([dt.datetime(2024, 3, 5, 14, 30), dt.datetime(2024, 3, 6)]),
            "promo": [True, False],
            "units": [1.5, 2.0],
        }
    )
    pq.write_table(table, path)
    raw = read_file(con, path, "raw")
    assert raw.file_format == "parquet"
    assert landed(con, raw) == [
        (1, "A1", "013800138000", "128000", "2024-03-05 14:30:00", "true", "1.5"),
        (2, "A2", None, "9900", "2024-03-06", "false", "2"),
    ]


def test_detect_format_by_content(tmp_path: Path) -> None:
    path = tmp_path / "export.dat"
    path.write_text('{"a": 1}\n', encoding="utf-8")
    assert detect_format(path) == "jsonl"
    pq.write_table(pa.table({"a": [1]}), tmp_path / "x.csv")
    assert detect_format(tmp_path / "x.csv") == "parquet"


def test_empty_file_is_an_input_error(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="no header row"):
        read_file(con, path, "raw")


def test_header_only_csv_has_no_rows(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "h.csv"
    path.write_text("订单号,手机号\n", encoding="utf-8")
    raw = read_file(con, path, "raw")
    assert raw.headers == ["订单号", "手机号"]
    assert raw.rows == 0


def test_copy_raw_is_content_addressed_and_read_only(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n", encoding="utf-8")
    scan = scan_file(path)
    target = copy_raw(path, tmp_path / "raw", scan.sha256, "csv")
    assert target.name == f"{scan.sha256}.csv"
    assert target.read_bytes() == path.read_bytes()
    assert not target.stat().st_mode & 0o222
    assert copy_raw(path, tmp_path / "raw", scan.sha256, "csv") == target


def test_cell_text_and_masking() -> None:
    assert cell_text(13800138000.0) == "13800138000"
    assert cell_text(dt.datetime(2024, 1, 2)) == "2024-01-02"
    assert cell_text("  ") is None
    assert mask_id_cards("id 11010119900307451X ok") == "id 1101**********451X ok"

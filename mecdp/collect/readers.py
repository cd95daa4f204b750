"""File readers: CSV (UTF-8 / GBK / GB18030), XLSX, JSONL and Parquet into one raw table.

Every reader lands the file in an engine table with `_row BIGINT` (the row number as the
user sees it: for CSV/XLSX the header is line 1 and the first data row 2; for JSONL the
line number; for Parquet the 1-based record number) and one VARCHAR column per file column,
named `c0`, `c1`, ... in header order. Values are never type-inferred: phone numbers keep
their leading zeros, long ids their digits, dates arrive as text for the cleaning stage.

Rows a reader cannot parse (a malformed JSONL line, a CSV row with more cells than headers)
become `ParseReject`s; they never stop the other rows.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mecdp.clean.rules import lit
from mecdp.errors import InputError

FORMATS = ("csv", "xlsx", "jsonl", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
CHUNK_BYTES = 8 * 1024 * 1024
ARROW_BATCH_ROWS = 50_000
# A resident id-card number (18 characters, last may be X): masked in any raw text we keep.
_ID_CARD_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ParseReject:
    """A row the reader could not parse: quarantined whole, with the raw text as payload."""

    row: int
    rule: str
    reason: str
    raw: str


@dataclass
class RawFile:
    """A file landed in an engine table, all VARCHAR, plus what the reader learned."""

    path: Path
    file_format: str
    encoding: str | None
    headers: list[str]
    table: str
    rows: int  # data rows landed in `table`
    row_sql: str = "_row"  # SQL expression of the row number in `table`
    rejects: list[ParseReject] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Every data row of the file, parsed or not."""
        return self.rows + len(self.rejects)

    def column(self, index: int) -> str:
        return f"c{index}"


@dataclass(frozen=True)
class FileScan:
    """One pass over the file bytes: hash, encoding verdict and line count."""

    sha256: str
    size: int
    utf8: bool  # strict UTF-8 (BOM allowed)
    lines: int  # physical lines (a last line without newline counts)
    first_bytes: bytes


def mask_id_cards(text: str) -> str:
    """Mask resident id-card numbers in free text, keeping the first 4 and last 4 characters."""
    return _ID_CARD_TEXT.sub(lambda m: m.group(1) + "*" * 10 + m.group(2), text)


def scan_file(path: Path) -> FileScan:
    """Hash the file and check whether it is strict UTF-8, in one streaming pass."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    utf8 = True
    size = 0
    newlines = 0
    last = b""
    first = b""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            if not first:
                first = chunk[:4096]
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            size += len(chunk)
            last = chunk[-1:]
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    lines = newlines + (1 if size and last != b"\n" else 0)
    return FileScan(digest.hexdigest(), size, utf8, lines, first)


def detect_format(path: Path, first_bytes: bytes | None = None) -> str:
    """csv, xlsx, jsonl or parquet: by content where it is unambiguous, else by extension."""
    if first_bytes is None:
        with path.open("rb") as fh:
            first_bytes = fh.read(4096)
    if first_bytes.startswith(b"PAR1"):
        return "parquet"
    if first_bytes.startswith(b"PK\x03\x04"):
        return "xlsx"
    by_ext = _EXTENSIONS.get(path.suffix.lower())
    if by_ext in ("csv", "jsonl"):
        return by_ext
    if first_bytes.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "jsonl"
    if by_ext is None and first_bytes:
        return "csv"
    raise InputError(
        f"{path.name}: cannot tell the file format; use one of {', '.join(FORMATS)}",
        field="file",
        value=path.name,
        rule="file.format",
    )


def _decode_failure(path: Path, encoding: str) -> tuple[int, int] | None:
    """(byte offset, line) of the first byte `encoding` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    fed = 0  # bytes handed to the decoder so far
    bad: int | None = None
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            held = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.start counts from the bytes the decoder still held before this chunk
                bad = fed - len(held) + exc.start
                break
            if not chunk:
                return None
            fed += len(chunk)
    newlines = 0
    with path.open("rb") as fh:
        remaining = bad
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            remaining -= len(chunk)
    return bad, newlines + 1


def detect_encoding(path: Path, scan: FileScan | None = None) -> str:
    """`utf-8` (BOM or not) or `gb18030` (a superset of GBK); else InputError naming the byte.

    The error names the byte offset and line of the first undecodable byte under whichever
    of the two encodings read further (the one the file most likely was meant to be in).
    """
    scan = scan or scan_file(path)
    if scan.utf8:
        return "utf-8"
    gb_failure = _decode_failure(path, "gb18030")
    if gb_failure is None:
        return "gb18030"
    utf_failure = _decode_failure(path, "utf-8") or (0, 1)
    encoding, (offset, line) = max(
        (("utf-8", utf_failure), ("gb18030", gb_failure)), key=lambda item: item[1][0]
    )
    with path.open("rb") as fh:
        fh.seek(offset)
        bad = fh.read(1)
    raise InputError(
        f"{path.name}: byte 0x{bad.hex()} at byte offset {offset} (line {line}) is neither "
        f"UTF-8 nor GBK/GB18030 (read as {encoding} up to there); save the file as UTF-8",
        field="file",
        value=path.name,
        rule="file.encoding",
        file=path.name,
        offset=offset,
        line=line,
    )


# --- staging helpers --------------------------------------------------------------------


def _land_batches(
    con: duckdb.DuckDBPyConnection,
    table: str,
    width: int,
    batches: Iterator[pa.RecordBatch],
) -> int:
    """Create `table` (_row, c0..c{width-1} VARCHAR) and append the Arrow batches."""
    cols = ", ".join(f'"c{i}" VARCHAR' for i in range(width))
    con.execute(f'CREATE TEMP TABLE "{table}" (_row BIGINT{", " if cols else ""}{cols})')
    names = ", ".join(["_row", *(f'"c{i}"' for i in range(width))])
    total = 0
    for number, batch in enumerate(batches):
        view = f"_{table}_batch_{number}"
        con.register(view, batch)
        try:
            con.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "{view}"')
        finally:
            con.unregister(view)
        total += batch.num_rows
    return total


def _rows_to_batches(
    width: int,
    rows: Iterator[tuple[int, list[str | None]]],
    progress: Progress | None,
    total_hint: int,
) -> Iterator[pa.RecordBatch]:
    schema = pa.schema(
        [pa.field("_row", pa.int64())] + [pa.field(f"c{i}", pa.string()) for i in range(width)]
    )
    numbers: list[int] = []
    columns: list[list[str | None]] = [[] for _ in range(width)]
    done = 0

    def flush() -> pa.RecordBatch:
        arrays = [pa.array(numbers, pa.int64())] + [pa.array(c, pa.string()) for c in columns]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    for number, values in rows:
        numbers.append(number)
        for i in range(width):
            columns[i].append(values[i] if i < len(values) else None)
        if len(numbers) >= ARROW_BATCH_ROWS:
            yield flush()
            done += len(numbers)
            if progress:
                progress(done, max(total_hint, done))
            numbers = []
            columns = [[] for _ in range(width)]
    if numbers or done == 0:
        yield flush()


def _dedupe_headers(headers: list[str]) -> list[str]:
    """Blank headers get a name (`column3`); repeated ones a suffix (`电话_2`)."""
    seen: dict[str, int] = {}
    result = []
    for index, raw in enumerate(headers):
        name = raw.strip() if raw and raw.strip() else f"column{index + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        result.append(name)
    return result


def _empty(path: Path) -> InputError:
    return InputError(
        f"{path.name}: the file has no header row",
        field="file",
        value=path.name,
        rule="file.empty",
    )


# --- CSV ---------------------------------------------------------------------------------


def _transcode_to_utf8(path: Path, encoding: str, target: Path) -> None:
    with path.open("rb") as src, target.open("wb") as out:
        reader = codecs.getreader(encoding)(src, "strict")
        writer = codecs.getwriter("utf-8")(out)
        shutil.copyfileobj(reader, writer, CHUNK_BYTES)


def _csv_header(utf8_path: Path) -> tuple[list[str], str] | None:
    """The header cells and delimiter when the header is the file's first, one-line record."""
    with utf8_path.open("r", encoding="utf-8-sig", newline="") as fh:
        sample = fh.read(65536)
    first_line = sample.split("\n", 1)[0].rstrip("\r")
    if not first_line.strip():
        return None
    delimiter = _sniff_delimiter(first_line)
    cells = next(csv.reader([first_line], delimiter=delimiter, strict=False), [])
    if first_line.count('"') % 2:
        return None  # a quoted header cell spans lines
    return cells, delimiter


def _csv_fast(
    con: duckdb.DuckDBPyConnection, utf8_path: Path, table: str, scan_lines: int
) -> tuple[list[str], int, int] | None:
    """DuckDB's parallel reader: when every record is one line, row = rowid - first + 2.

    Returns None (and lands nothing) when the file needs the careful path: a parse error,
    ragged rows, multi-line records or blank lines (row numbers would drift).
    """
    header = _csv_header(utf8_path)
    if header is None:
        return None
    headers, delimiter = header
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(headers)))
    source = (
        f"read_csv({lit(str(utf8_path))}, auto_detect=false, header=true, "
        f"delim={lit(delimiter)}, quote='\"', escape='\"', strict_mode=true, "
        f"null_padding=false, columns={{{columns}}})"
    )
    try:
        con.execute(f'CREATE TEMP TABLE "{table}" AS SELECT * FROM {source}')
    except duckdb.Error:
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
        return None
    # Rows keep file order (preserve_insertion_order), so the row number follows the rowid.
    # Inside a transaction rowids start at a large base: offset by the first one.
    row = con.execute(f'SELECT count(*), min(rowid), max(rowid) FROM "{table}"').fetchone()
    rows, first, last = (int(row[0]), row[1], row[2]) if row else (0, None, None)
    contiguous = rows == 0 or (
        first is not None and last is not None and int(last) - int(first) + 1 == rows
    )
    if rows + 1 != scan_lines or not contiguous:
        con.execute(f'DROP TABLE "{table}"')
        return None
    return headers, rows, int(first or 0)


def _csv_records(text: io.TextIOBase | Any, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, cells) for every non-blank record."""
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    line = 1
    for cells in reader:
        start = line
        line = reader.line_num + 1
        if not cells or all(not c.strip() for c in cells):
            continue
        yield start, cells


def _sniff_delimiter(sample: str) -> str:
    """The most frequent of , TAB ; | in the first line (comma when none)."""
    first = sample.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_careful(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    encoding: str,
    table: str,
    progress: Progress | None,
    total_hint: int,
) -> tuple[list[str], int, list[ParseReject]]:
    """Python's csv module: exact row numbers, ragged rows become rejects."""
    rejects: list[ParseReject] = []
    with path.open(
        "r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline=""
    ) as fh:
        delimiter = _sniff_delimiter(fh.read(65536))
        fh.seek(0)
        records = _csv_records(fh, delimiter)
        try:
            header_line, header_cells = next(records)
        except StopIteration:
            raise _empty(path) from None
        headers = _dedupe_headers(header_cells)
        width = len(headers)

        def rows() -> Iterator[tuple[int, list[str | None]]]:
            for line, cells in records:
                number = line if header_line == 1 else line - header_line + 1
                if len(cells) > width and any(c.strip() for c in cells[width:]):
                    raw = delimiter.join(cells)
                    rejects.append(
                        ParseReject(
                            number,
                            "file.extra_cells",
                            f"row {number} has {len(cells)} cells but the header has {width}",
                            mask_id_cards(raw),
                        )
                    )
                    continue
                yield number, [c if c != "" else None for c in cells[:width]]

        landed = _land_batches(
            con, table, width, _rows_to_batches(width, rows(), progress, total_hint)
        )
    return headers, landed, rejects


def read_csv_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    scan: FileScan | None = None,
    progress: Progress | None = None,
) -> RawFile:
    scan = scan or scan_file(path)
    if scan.size == 0:
        raise _empty(path)
    encoding = detect_encoding(path, scan)
    with tempfile.TemporaryDirectory(prefix="mecdp-csv-") as tmp:
        utf8_path = path
        if encoding != "utf-8":
            utf8_path = Path(tmp) / "utf8.csv"
            _transcode_to_utf8(path, encoding, utf8_path)
        fast = _csv_fast(con, utf8_path, table, scan.lines)
        if fast is not None:
            headers, rows, first_rowid = fast
            if progress:
                progress(rows, rows)
            row_sql = f"rowid + {2 - first_rowid}"
            return RawFile(
                path, "csv", encoding, _dedupe_headers(headers), table, rows, row_sql=row_sql
            )
    headers, rows, rejects = _csv_careful(
        con, path, encoding, table, progress, max(scan.lines - 1, 0)
    )
    return RawFile(path, "csv", encoding, headers, table, rows, rejects=rejects)


# --- XLSX --------------------------------------------------------------------------------


def cell_text(value: Any) -> str | None:
    """A spreadsheet or JSON value as the text the cleaning stage reads.

    Dates become ISO text (a midnight datetime a date), whole floats lose their `.0` (a phone
    typed as a number stays 13800138000), other numbers keep their digits, booleans become
    true/false; blank text is NULL.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.timedelta):
        return str(value)
    text = str(value)
    return text if text.strip() else None


def read_xlsx_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    progress: Progress | None = None,
) -> RawFile:
    """First sheet; the first non-empty row is the header; row = the sheet's row number."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise InputError(
            f"{path.name}: not a readable XLSX workbook ({exc})",
            field="file",
            value=path.name,
            rule="file.xlsx",
        ) from exc
    try:
        sheet = book.worksheets[0]
        total_hint = max(int(sheet.max_row or 0) - 1, 0)
        rows_iter = sheet.iter_rows(values_only=True)
        headers: list[str] | None = None
        number = 0
        for number, values in enumerate(rows_iter, start=1):  # noqa: B007
            texts = [cell_text(v) for v in values]
            if any(t is not None for t in texts):
                while texts and texts[-1] is None:
                    texts.pop()
                headers = _dedupe_headers([t or "" for t in texts])
                break
        if headers is None:
            raise _empty(path)
        width = len(headers)
        header_row = number

        def rows() -> Iterator[tuple[int, list[str | None]]]:
            for row_number, values in enumerate(rows_iter, start=header_row + 1):
                texts = [cell_text(v) for v in values]
                if not any(t is not None for t in texts):
                    continue
                yield row_number, texts[:width]

        landed = _land_batches(
            con, table, width, _rows_to_batches(width, rows(), progress, total_hint)
        )
    finally:
        book.close()
    return RawFile(path, "xlsx", None, headers, table, landed)


# --- JSONL -------------------------------------------------------------------------------


def _json_text(value: Any) -> str | None:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return cell_text(value)


def read_jsonl_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    scan: FileScan | None = None,
    progress: Progress | None = None,
) -> RawFile:
    """One JSON object per line; numbers keep their exact text; a bad line is a reject."""
    scan = scan or scan_file(path)
    encoding = detect_encoding(path, scan)
    headers: list[str] = []
    index: dict[str, int] = {}
    rejects: list[ParseReject] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    with path.open(
        "r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="\n"
    ) as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_int=str, parse_float=str)
            except json.JSONDecodeError as exc:
                rejects.append(
                    ParseReject(
                        line_number,
                        "file.malformed_line",
                        f"line {line_number} is not valid JSON: {exc.msg} at column {exc.colno}",
                        mask_id_cards(line.rstrip("\r\n")),
                    )
                )
                continue
            if not isinstance(obj, dict):
                rejects.append(
                    ParseReject(
                        line_number,
                        "file.malformed_line",
                        f"line {line_number} is JSON but not an object",
                        mask_id_cards(line.rstrip("\r\n")),
                    )
                )
                continue
            for key in obj:
                if key not in index:
                    index[key] = len(headers)
                    headers.append(str(key))
            parsed.append((line_number, obj))
    width = len(headers)

    def rows() -> Iterator[tuple[int, list[str | None]]]:
        for line_number, obj in parsed:
            values: list[str | None] = [None] * width
            for key, value in obj.items():
                values[index[key]] = _json_text(value)
            yield line_number, values

    landed = _land_batches(
        con, table, width, _rows_to_batches(width, rows(), progress, len(parsed))
    )
    return RawFile(path, "jsonl", encoding, headers, table, landed, rejects=rejects)


# --- Parquet -----------------------------------------------------------------------------


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    if (
        pa.types.is_floating(kind)
        or pa.types.is_nested(kind)
        or pa.types.is_binary(kind)
        or (pa.types.is_large_binary(kind))
    ):
        return pa.chunked_array(
            [pa.array([_json_text(v) for v in column.to_pylist()], pa.string())], pa.string()
        )
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false").cast(pa.string())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return pa.chunked_array(
            [pa.array([cell_text(v) for v in column.to_pylist()], pa.string())], pa.string()
        )
    return column.cast(pa.string())


def read_parquet_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    progress: Progress | None = None,
) -> RawFile:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"{path.name}: not a readable Parquet file ({exc})",
            field="file",
            value=path.name,
            rule="file.parquet",
        ) from exc
    headers = _dedupe_headers([str(n) for n in parquet.schema_arrow.names])
    width = len(headers)
    total = parquet.metadata.num_rows

    def batches() -> Iterator[pa.RecordBatch]:
        start = 1
        for batch in parquet.iter_batches(batch_size=ARROW_BATCH_ROWS):
            tbl = pa.Table.from_batches([batch])
            arrays = [pa.array(range(start, start + batch.num_rows), pa.int64())]
            arrays += [_as_text(tbl.column(i)).combine_chunks() for i in range(width)]
            names = ["_row", *(f"c{i}" for i in range(width))]
            start += batch.num_rows
            if progress:
                progress(start - 1, total)
            yield pa.RecordBatch.from_arrays(arrays, names=names)

    landed = _land_batches(con, table, width, batches())
    return RawFile(path, "parquet", None, headers, table, landed)


# --- entry point -------------------------------------------------------------------------


def read_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    scan: FileScan | None = None,
    progress: Progress | None = None,
) -> RawFile:
    """Land `path` in the temp table `table` (see the module docstring)."""
    scan = scan or scan_file(path)
    file_format = detect_format(path, scan.first_bytes)
    if file_format == "csv":
        return read_csv_file(con, path, table, scan=scan, progress=progress)
    if file_format == "xlsx":
        return read_xlsx_file(con, path, table, progress=progress)
    if file_format == "jsonl":
        return read_jsonl_file(con, path, table, scan=scan, progress=progress)
    return read_parquet_file(con, path, table, progress=progress)


def copy_raw(path: Path, raw_dir: Path, sha256: str, file_format: str) -> Path:
    """Keep an immutable, content-addressed copy of the file bytes: `<raw_dir>/<sha256>.<ext>`."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / f"{sha256}.{file_format}"
    if target.exists():
        return target
    fd, tmp_name = tempfile.mkstemp(dir=raw_dir, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
        os.chmod(tmp_name, 0o444)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target

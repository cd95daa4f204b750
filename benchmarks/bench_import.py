"""Import throughput: ~1M POS order rows from one CSV, end to end (read, clean, write).

Prints a table with rows/s, and the same file through a minimal hand-written reference
(bare DuckDB read_csv + INSERT into a plain table) with the ratio between the two.

    .venv/bin/python benchmarks/bench_import.py [--rows 1000000] [--customers N]

By default every row has its own phone number (the worst case for encryption: nothing to
share); `--customers N` draws the buyers from N phone numbers, as a chain's order export
has (one member orders many times).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import duckdb

from mecdp.collect.importer import import_file
from mecdp.collect.sources import add_source
from mecdp.config import Settings, init_workspace
from mecdp.store import open_store

HEADERS = ["订单号", "手机号", "姓名", "消费金额", "项目", "门店", "下单时间", "渠道", "数量"]
ITEMS = ["水光针", "热玛吉", "超皮秒", "玻尿酸", "光子嫩肤"]
NAMES = ["张三", "李四", "王芳", "刘洋", "陈静"]


def write_orders(path: Path, rows: int, seed: int = 7, customers: int | None = None) -> None:
    rng = random.Random(seed)
    members = [f"13{rng.randrange(10**9):09d}" for _ in range(customers or 0)]
    with path.open("w", encoding="utf-8") as out:
        out.write(",".join(HEADERS) + "\n")
        for i in range(rows):
            phone = rng.choice(members) if members else f"13{rng.randrange(10**9):09d}"
            day = rng.randrange(1, 28)
            line = (
                f"P{i:09d},{phone},{rng.choice(NAMES)},{rng.randrange(100, 30000)}.00,"
                f"{rng.choice(ITEMS)},SH{rng.randrange(1, 40):02d},"
                f"2024-03-{day:02d} {rng.randrange(9, 21):02d}:{rng.randrange(60):02d}:00,"
                f"门店,{rng.randrange(1, 4)}\n"
            )
            out.write(line)


def bench_import(path: Path, work: Path) -> tuple[float, float, int]:
    settings = Settings(workspace=work / "ws")
    init_workspace(settings)
    store = open_store(settings.db_path)
    try:
        add_source(store.cursor(), "pos_bench", channel="pos", kind="orders", mapping="pos_orders")
        start, cpu = time.perf_counter(), time.process_time()
        report = import_file(store, settings, path, source_id="pos_bench")
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        store.close()
    assert report.quarantined == 0, report.sample_rejects[:3]
    return elapsed, cpu, report.accepted


def bench_reference(path: Path, work: Path) -> tuple[float, float]:
    con = duckdb.connect(str(work / "reference.duckdb"))
    try:
        con.execute(
            "CREATE TABLE orders_plain (order_no VARCHAR, phone VARCHAR, name VARCHAR, "
            "amount VARCHAR, item VARCHAR, store VARCHAR, ordered_at VARCHAR, channel VARCHAR, "
            "quantity VARCHAR)"
        )
        start, cpu = time.perf_counter(), time.process_time()
        con.execute(
            f"INSERT INTO orders_plain SELECT * FROM read_csv('{path}', all_varchar=true, "
            "header=true)"
        )
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--customers", type=int, default=None, help="distinct phones (default: one per row)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mecdp-bench-") as tmp:
        work = Path(tmp)
        path = work / "pos_orders.csv"
        start = time.perf_counter()
        write_orders(path, args.rows, customers=args.customers)
        generated = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        elapsed, cpu, accepted = bench_import(path, work)
        reference, reference_cpu = bench_reference(path, work)
    buyers = f"{args.customers:,} customers" if args.customers else "one phone per row"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"file: {args.rows:,} order rows ({buyers}), {size_mb:.0f} MB CSV "
        f"(generated in {generated:.1f} s); load average {load}"
    )
    # CPU seconds (all threads) beside wall seconds: on a shared machine they vary less.
    print(f"{'run':<44} {'seconds':>8} {'rows/s':>12} {'cpu s':>8}")
    print(
        f"{'import_file (read+clean+write, 1 txn)':<44} {elapsed:>8.2f} "
        f"{args.rows / elapsed:>12,.0f} {cpu:>8.2f}"
    )
    print(
        f"{'reference (read_csv + INSERT, plain table)':<44} {reference:>8.2f} "
        f"{args.rows / reference:>12,.0f} {reference_cpu:>8.2f}"
    )
    print(
        f"ratio import/reference: {elapsed / reference:.1f}x slower "
        f"({cpu / reference_cpu:.1f}x the CPU); accepted {accepted:,}"
    )


if __name__ == "__main__":
    main()

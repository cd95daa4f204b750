"""Member layering speed: RFM + CLV + the starter tags + behaviour tiers + treatment due dates
(`mecdp.compute.service.compute_all`, persisted with history) on N synthetic members, beside
two references timed in the same run on the same data:

* a bare hand-written DuckDB query: RFM quintile scores and five starter tags in one SQL
  statement (what the engine itself allows, without our rule compiler, CLV or persistence);
* pandas: the same RFM and five tags written plainly (what an analyst does today), on frames
  already in memory (loading them is not counted).

The store is written straight with set-based SQL (no importer): golden records, OneID
record links, the demo catalog, `orders` (10 per member on average, skewed), appointments
(3 per member), treatments (2) and interactions (3) over three years.

Run: .venv/bin/python benchmarks/bench_layering.py [--members 100000]
     .venv/bin/python benchmarks/bench_layering.py --members 1000000   # the issue's figure
Target (issue 6, 1M members / 10M orders): <= 60 s on DuckDB; aim >= 10x pandas.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
from rich.console import Console
from rich.table import Table

from mecdp.compute.service import compute_all
from mecdp.demo.synthetic import AS_OF, synthesise
from mecdp.store import open_store

BARE_SQL = """
WITH o AS (
    SELECT r.one_id, o.order_no, o.ordered_at, coalesce(o.paid_fen, o.amount_fen) AS paid,
           o.promo
    FROM orders o JOIN identity_records r ON r.record_id = o.record_id
    WHERE o.status <> 'refunded' AND o.ordered_at <= $as_of),
a AS (
    SELECT r.one_id, a.status, coalesce(a.arrived_at, a.scheduled_at) AS seen_at
    FROM appointments a JOIN identity_records r ON r.record_id = a.record_id
    WHERE a.scheduled_at <= $as_of),
rfm AS (
    SELECT one_id, date_diff('day', max(ordered_at), $as_of) AS recency,
           count(DISTINCT order_no) AS frequency, sum(paid) AS monetary,
           min(ordered_at) AS first_order, avg(CAST(promo AS INTEGER)) AS promo_share
    FROM o WHERE ordered_at >= $as_of - INTERVAL 365 DAY GROUP BY one_id),
cut AS (
    SELECT quantile_cont(recency, [0.2, 0.4, 0.6, 0.8]) AS rq,
           quantile_cont(frequency, [0.2, 0.4, 0.6, 0.8]) AS fq,
           quantile_cont(monetary, [0.2, 0.4, 0.6, 0.8]) AS mq FROM rfm),
visits AS (
    SELECT one_id,
           count(*) FILTER (status = 'arrived' AND seen_at >= $as_of - INTERVAL 90 DAY) AS v90,
           count(*) FILTER (status = 'no_show' AND seen_at >= $as_of - INTERVAL 365 DAY) AS ns,
           max(seen_at) FILTER (status = 'arrived') AS last_visit
    FROM a GROUP BY one_id),
last_order AS (SELECT one_id, max(ordered_at) AS last_order FROM o GROUP BY one_id)
SELECT p.one_id,
       5 - (CASE WHEN r.recency > c.rq[1] THEN 1 ELSE 0 END + CASE WHEN r.recency > c.rq[2]
            THEN 1 ELSE 0 END + CASE WHEN r.recency > c.rq[3] THEN 1 ELSE 0 END
            + CASE WHEN r.recency > c.rq[4] THEN 1 ELSE 0 END) AS r_score,
       1 + (CASE WHEN r.frequency > c.fq[1] THEN 1 ELSE 0 END + CASE WHEN r.frequency > c.fq[2]
            THEN 1 ELSE 0 END + CASE WHEN r.frequency > c.fq[3] THEN 1 ELSE 0 END
            + CASE WHEN r.frequency > c.fq[4] THEN 1 ELSE 0 END) AS f_score,
       1 + (CASE WHEN r.monetary > c.mq[1] THEN 1 ELSE 0 END + CASE WHEN r.monetary > c.mq[2]
            THEN 1 ELSE 0 END + CASE WHEN r.monetary > c.mq[3] THEN 1 ELSE 0 END
            + CASE WHEN r.monetary > c.mq[4] THEN 1 ELSE 0 END) AS m_score,
       r.first_order >= $as_of - INTERVAL 90 DAY AS new_customer,
       coalesce(v.v90, 0) >= 4 AS frequent_visitor,
       coalesce(v.ns, 0) >= 2 AS frequent_no_show,
       coalesce(r.frequency, 0) >= 2 AND r.promo_share >= 0.6 AS promotion_driven,
       greatest(v.last_visit, l.last_order) IS NULL
         OR greatest(v.last_visit, l.last_order) < $as_of - INTERVAL 180 DAY AS dormant
FROM profiles p CROSS JOIN cut c
LEFT JOIN rfm r ON r.one_id = p.one_id
LEFT JOIN visits v ON v.one_id = p.one_id
LEFT JOIN last_order l ON l.one_id = p.one_id
"""


def bare_duckdb(con: duckdb.DuckDBPyConnection) -> float:
    started = time.perf_counter()
    con.execute(f"CREATE OR REPLACE TEMP TABLE bare_out AS {BARE_SQL}", {"as_of": AS_OF})
    return time.perf_counter() - started


def load_frames(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    return {
        "orders": con.execute(
            "SELECT r.one_id, o.order_no, o.ordered_at, coalesce(o.paid_fen, o.amount_fen) "
            "AS paid, o.promo, o.status FROM orders o JOIN identity_records r USING (record_id)"
        ).df(),
        "appointments": con.execute(
            "SELECT r.one_id, a.status, coalesce(a.arrived_at, a.scheduled_at) AS at, "
            "a.scheduled_at FROM appointments a JOIN identity_records r USING (record_id)"
        ).df(),
        "profiles": con.execute("SELECT one_id FROM profiles").df(),
    }


def plain_pandas(frames: dict[str, pd.DataFrame]) -> float:
    """RFM + five starter tags the way an analyst writes them in pandas."""
    started = time.perf_counter()
    as_of = pd.Timestamp(AS_OF)
    orders = frames["orders"]
    orders = orders[(orders.status != "refunded") & (orders.ordered_at <= as_of)]
    window = orders[orders.ordered_at >= as_of - pd.Timedelta(days=365)]
    rfm = window.groupby("one_id").agg(
        last=("ordered_at", "max"),
        frequency=("order_no", "nunique"),
        monetary=("paid", "sum"),
        first_order=("ordered_at", "min"),
        promo_share=("promo", "mean"),
    )
    rfm["recency"] = (as_of - rfm["last"]).dt.days
    for col, name, invert in (("recency", "r", True), ("frequency", "f", False),
                              ("monetary", "m", False)):  # fmt: skip
        cuts = rfm[col].quantile([0.2, 0.4, 0.6, 0.8]).to_numpy()
        above = sum((rfm[col] > c).astype(int) for c in cuts)
        rfm[f"{name}_score"] = 5 - above if invert else 1 + above
    appts = frames["appointments"]
    appts = appts[appts.scheduled_at <= as_of]
    arrived = appts[appts.status == "arrived"]
    v90 = arrived[arrived["at"] >= as_of - pd.Timedelta(days=90)].groupby("one_id").size()
    ns = appts[(appts.status == "no_show") & (appts["at"] >= as_of - pd.Timedelta(days=365))]
    no_show = ns.groupby("one_id").size()
    last_visit = arrived.groupby("one_id")["at"].max()
    last_order = orders.groupby("one_id")["ordered_at"].max()
    out = frames["profiles"].set_index("one_id")
    out = out.join(rfm[["r_score", "f_score", "m_score", "first_order", "frequency",
                        "promo_share"]])  # fmt: skip
    out["new_customer"] = out["first_order"] >= as_of - pd.Timedelta(days=90)
    out["frequent_visitor"] = v90.reindex(out.index, fill_value=0) >= 4
    out["frequent_no_show"] = no_show.reindex(out.index, fill_value=0) >= 2
    out["promotion_driven"] = (out["frequency"].fillna(0) >= 2) & (out["promo_share"] >= 0.6)
    last = pd.concat([last_visit, last_order], axis=1).max(axis=1).reindex(out.index)
    out["dormant"] = last.isna() | (last < as_of - pd.Timedelta(days=180))
    return time.perf_counter() - started


def _recreate_empty(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Empty `table` by dropping and recreating it (deleting millions of rows commits slowly)."""
    row = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone()
    indexes = con.execute("SELECT sql FROM duckdb_indexes() WHERE table_name = ?", [table])
    index_sql = [r[0] for r in indexes.fetchall()]
    assert row is not None
    con.execute(f"DROP TABLE {table}")
    con.execute(row[0])
    for sql in index_sql:
        con.execute(sql)


def _sizes(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = ("profiles", "orders", "appointments", "treatments", "interactions")
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone() for t in tables}
    return {("members" if t == "profiles" else t): int(c[0]) if c else 0 for t, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas reference")
    parser.add_argument(
        "--db", type=Path, help="keep the synthesised store here (reused when it exists)"
    )
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.duckdb"
        reuse = path.exists()
        store = open_store(path)
        started = time.perf_counter()
        if reuse:  # a first run again
            for table in ("customer_tags", "customer_tag_history"):
                _recreate_empty(store.con, table)
            store.con.execute("CHECKPOINT")
        sizes = _sizes(store.con) if reuse else synthesise(store.con, args.members)
        console.print(
            f"{'reused' if reuse else 'synthesised'} {sizes} in "
            f"{time.perf_counter() - started:.1f} s",
            highlight=False,
        )
        report = compute_all(store, as_of=AS_OF)
        bare = bare_duckdb(store.con)
        frames = None if args.no_pandas else load_frames(store.con)
        pandas_s = plain_pandas(frames) if frames is not None else float("nan")
        again = compute_all(store, as_of=AS_OF + timedelta(days=30))
        store.close()
    members = sizes["members"]
    table = Table(title=f"member layering, {members:,} members / {sizes['orders']:,} orders")
    for col in ("job", "seconds", "vs compute_all"):
        table.add_column(col, justify="right" if col != "job" else "left")
    first = report.seconds
    rows = [
        ("compute_all (RFM, CLV, all tags, tiers, due, persisted)", first),
        ("compute_all again, 30 days later (history diff)", again.seconds),
        ("bare DuckDB: RFM + 5 tags, one query, not persisted", bare),
        ("pandas: RFM + 5 tags, frames in memory", pandas_s),
    ]
    for label, seconds in rows:
        table.add_row(label, f"{seconds:.1f}", f"{seconds / first:.2f}x")
    console.print(table)
    stages = Table(title="compute_all stages (first run)")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for stage, seconds in report.stages.items():
        stages.add_row(stage, f"{seconds:.1f}")
    console.print(stages)
    console.print(
        f"tags {report.tagged:,} rows, changes on the second run {again.tag_changes:,}; "
        f"pandas / compute_all = {pandas_s / first:.1f}x, compute_all / bare = "
        f"{first / bare:.1f}x",
        highlight=False,
    )


if __name__ == "__main__":
    main()

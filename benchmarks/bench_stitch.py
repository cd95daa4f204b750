"""OneID real-time stitching: events/s the stream processor sustains on a resolved store,
beside a minimal hand-written reference doing the same job in bare SQL.

N members are synthesised as in bench_identity (written straight into the store) and resolved
(deterministic rebuild). Then E raw events are appended to `raw_events` as the collector
writes them (personal traits sealed by `protect_message`) from one mini-program source:
for every 10 events one identify of a member (userId, anonymousId, memberNo, sealed phone and
name) and 9 tracks (userId or only the anonymousId of an earlier identify, 1 in 10 of them a
new visitor's anonymous id). The processor (`StreamProcessor.process_batch`) is run until it
has caught up; each batch normalises the events, cleans and seals the person data, stitches
the batch's records into the graph and refreshes the golden records and event tags of the
persons touched, in one transaction with the checkpoint.

The reference, per batch of the same size and in one transaction: the events row from the
JSON, userId / anonymousId / memberNo identifiers, and each record's one_id by a join with
`identity_oneid` (new persons not issued, no cleaning, no encryption, no golden record): the
floor of what stitching a batch can cost.

Run: .venv/bin/python benchmarks/bench_stitch.py [--members 100000] [--events 200000]
Target (issue 4): >= 20,000 events/s sustained in the stream processor (1M members).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_identity import open_bench_store, synthesise  # noqa: E402

from mecdp.collect.processor import BATCH_SIZE, StreamProcessor  # noqa: E402
from mecdp.collect.sources import add_source  # noqa: E402
from mecdp.config import Settings  # noqa: E402
from mecdp.identity.service import resolve_identities  # noqa: E402
from mecdp.privacy.vault import protect_message, vault_for  # noqa: E402
from mecdp.store import Store  # noqa: E402

SOURCE = "mini_app"


def make_events(members: int, events: int, settings: Settings) -> pa.Table:
    """Raw-log rows (seq, source_id, message_id, received_at, event_time, payload)."""
    vault = vault_for(settings)
    base = datetime(2026, 3, 1, tzinfo=UTC).replace(tzinfo=None)
    rows: dict[str, list[object]] = {
        k: [] for k in ("seq", "source_id", "message_id", "received_at", "event_time", "payload")
    }
    for n in range(events):
        member = (n // 10 * 7919) % members
        at = base + timedelta(milliseconds=n)
        if n % 10 == 0:
            message: dict[str, object] = {
                "type": "identify",
                "userId": f"u{member}",
                "anonymousId": f"a{member}",
                "traits": {
                    "memberNo": f"M{10000000 + member}",
                    "phone": f"+861{5000000000 + member}",
                    "name": "王小美",
                },
            }
            protect_message(message, vault)
        elif n % 10 == 9:
            message = {"type": "track", "event": "Page Viewed", "anonymousId": f"v{n}"}
        else:
            who = {"userId": f"u{member}"} if n % 2 else {"anonymousId": f"a{member}"}
            message = {"type": "track", "event": "Product Viewed", **who}
            message["properties"] = {"sku": f"SKU{n % 300}", "price": 980}
        message["messageId"] = f"m{n}"
        rows["seq"].append(n + 1)
        rows["source_id"].append(SOURCE)
        rows["message_id"].append(f"m{n}")
        rows["received_at"].append(at)
        rows["event_time"].append(at)
        rows["payload"].append(json.dumps(message, ensure_ascii=False))
    return pa.table(rows)


def append_raw(cur: duckdb.DuckDBPyConnection, raw: pa.Table) -> None:
    cur.register("bench_raw", raw)
    cur.execute("INSERT INTO raw_events SELECT * FROM bench_raw")
    cur.unregister("bench_raw")
    # the sequence moves past the rows written, as the collector's nextval would have
    cur.execute("SELECT count(nextval('raw_events_seq')) FROM range(?)", [raw.num_rows])


def run_processor(store: Store, settings: Settings, batch_size: int) -> tuple[float, float, int]:
    """Wall and cpu seconds until the processor has caught up; batches run."""
    processor = StreamProcessor(store, settings, batch_size=batch_size)
    start, cpu, batches = time.perf_counter(), time.process_time(), 0
    while processor.process_batch():
        batches += 1
    return time.perf_counter() - start, time.process_time() - cpu, batches


def run_reference(store: Store, batch_size: int) -> tuple[float, float]:
    """The bare SQL floor of the same job (see the module docstring)."""
    cur = store.con.cursor()
    cur.execute(
        "CREATE TEMP TABLE ref_events AS SELECT * FROM events WHERE FALSE; "
        "CREATE TEMP TABLE ref_ids (record_id VARCHAR, id_type VARCHAR, id_value VARCHAR); "
        "CREATE TEMP TABLE ref_records (record_id VARCHAR, one_id VARCHAR)"
    )
    head = cur.execute("SELECT max(seq) FROM raw_events").fetchone()
    last = int(head[0]) if head and head[0] is not None else 0
    start, cpu = time.perf_counter(), time.process_time()
    for low in range(0, last, batch_size):
        cur.execute("BEGIN TRANSACTION")
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE ref_batch AS "
            "SELECT *, CAST(payload AS JSON) AS p FROM raw_events WHERE seq > ? AND seq <= ?",
            [low, low + batch_size],
        )
        cur.execute(
            "INSERT INTO ref_events (record_id, source_id, seq, message_id, type, event, "
            "user_id, anonymous_id, occurred_at, received_at, properties) "
            "SELECT source_id || ':' || message_id, source_id, seq, message_id, p->>'$.type', "
            "p->>'$.event', p->>'$.userId', p->>'$.anonymousId', event_time, received_at, "
            "CAST(p->'$.properties' AS VARCHAR) FROM ref_batch"
        )
        cur.execute(
            "INSERT INTO ref_ids SELECT * FROM ("
            "SELECT source_id || ':' || message_id AS record_id, 'user_id' AS id_type, "
            "p->>'$.userId' AS id_value FROM ref_batch "
            "UNION ALL SELECT source_id || ':' || message_id, 'anonymous_id', "
            "p->>'$.anonymousId' FROM ref_batch "
            "UNION ALL SELECT source_id || ':' || message_id, 'member_no', "
            "p->>'$.traits.memberNo' FROM ref_batch) WHERE id_value IS NOT NULL"
        )
        cur.execute(
            "INSERT INTO ref_records SELECT i.record_id, min(o.one_id) FROM ref_ids i "
            "JOIN identity_oneid o ON o.id_type = i.id_type AND o.id_value = i.id_value "
            "GROUP BY i.record_id"
        )
        cur.execute("COMMIT")
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--memory-limit", default="6GB")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        settings, store = open_bench_store(Path(tmp), args.memory_limit)
        cur = store.cursor()
        with console.status(f"synthesising and resolving {args.members:,} members"):
            synthesise(cur, args.members)
            add_source(cur, SOURCE, channel="wechat_mp")
            resolve_identities(store, workspace=settings.workspace, match=False)
        with console.status(f"writing {args.events:,} raw events"):
            append_raw(cur, make_events(args.members, args.events, settings))
        with console.status("reference: bare SQL stitching"):
            ref_wall, ref_cpu = run_reference(store, args.batch_size)
        with console.status("stream processor"):
            wall, cpu, batches = run_processor(store, settings, args.batch_size)
        linked = cur.execute(
            "SELECT count(*) FROM identity_records r JOIN events e USING (record_id)"
        ).fetchone()
        persons = cur.execute(
            "SELECT count(DISTINCT r.one_id) FROM identity_records r JOIN events e "
            "USING (record_id)"
        ).fetchone()
        store.close()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    table = Table(
        title=f"Stream stitching: {args.events:,} events on {args.members:,} resolved members, "
        f"batches of {args.batch_size:,} (load average {load})"
    )
    for col in ("path", "seconds", "cpu seconds", "events/s", "vs reference", "result"):
        table.add_column(col, justify="right" if col != "path" else "left")
    ref_rate = args.events / ref_wall
    rate = args.events / wall
    table.add_row(
        "reference: bare SQL per batch",
        f"{ref_wall:.2f}",
        f"{ref_cpu:.2f}",
        f"{ref_rate:,.0f}",
        "1.0x",
        "",
    )
    table.add_row(
        "stream processor (stitch + golden record)",
        f"{wall:.2f}",
        f"{cpu:.2f}",
        f"{rate:,.0f}",
        f"{ref_rate / rate:.1f}x slower",
        f"{batches} batches, {linked[0] if linked else 0:,} events under "
        f"{persons[0] if persons else 0:,} persons",
    )
    console.print(table)


if __name__ == "__main__":
    main()

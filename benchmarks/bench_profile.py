"""Profile lookup speed: `GET /v1/profiles/{ref}` on a real `mecdp serve` at N members, driven
by a separate load process, beside a hand-written reference: the bare DuckDB reads of the same
tables for the same persons (identifier -> one_id, then document, consents, tags and scores in
one statement), in one thread and in two.

The workspace is written straight into a store (set-based SQL, no importer): per member a
golden record, 4 traits, 3 identifiers (phone stored as a blind index + AES-GCM token as
privacy phase B keeps it, member no., WeChat unionid), 0-2 course cards, a consent, and OneID's
identity_oneid / identity_persons rows; what `mecdp compute` writes (3 tags with their history,
a scores row, a treatment due date for every other member); then the profile documents, as the
build writes them. The load process keeps HTTP/1.1 connections open. It first looks up every
sampled member once (closed loop: a person's first read loads index nodes and blocks into
DuckDB's buffer pool; a server that has run a while holds the store in memory, 2.7 GB at 1M
members), then sends at a fixed rate (open loop: latency counts from the scheduled send time,
so queueing shows), then as fast as it can (closed loop) for the throughput ceiling; the
reference warms up the same way. Lookups go half by one_id, half by phone
(`phone:138...`, resolved through the blind index), masked (marketer API key, so no audit row
per read). The table's title gives the machine's load average before and after: the 2 cores
are shared, and DuckDB point reads slow down several times on a busy machine.

The server answers a repeated masked lookup from its serving cache (`mecdp.profiles.serving`),
so a second reference shows what this machine allows at all: a minimal hand-written HTTP
server (asyncio on uvloop, as uvicorn runs) answering every request with one pre-rendered
answer of the same size, under the same open and closed loops. The server's resident memory
after the run is printed below the table.

Run: .venv/bin/python benchmarks/bench_profile.py [--members 100000] [--rate 1000]
     .venv/bin/python benchmarks/bench_profile.py --members 1000000   # the issue's figure
Target (issue 5, 1M members): p99 <= 20 ms at >= 1,000 requests/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from mecdp.config import Settings, init_workspace
from mecdp.privacy import auth
from mecdp.privacy.crypto import blind_index
from mecdp.privacy.vault import CTX_IDENTIFIER, vault_for
from mecdp.profiles import lookup
from mecdp.store import open_store

CHUNK = 200_000


def synthesise(settings: Settings, members: int, console: Console) -> None:
    store = open_store(settings.db_path)
    con = store.con
    con.execute("SET memory_limit = '10GB'")  # shared machine; 6 GB ran out on 1M documents
    vault = vault_for(settings)
    key = settings.key()
    started = time.perf_counter()
    con.execute(
        "INSERT OR IGNORE INTO stores SELECT 'S' || lpad(i::VARCHAR, 2, '0'), '门店' || i, "
        "'上海', NULL FROM range(1, 21) t(i)"
    )
    # phones: blind index + token (what phase B stores), written in chunks
    for lo in range(0, members, CHUNK):
        hi = min(members, lo + CHUNK)
        plain = [f"+86139{i:08d}" for i in range(lo, hi)]
        table = pa.table(
            {
                "i": pa.array(range(lo, hi), pa.int64()),
                "bidx": pa.array([blind_index(key, "phone", p) for p in plain]),
                "enc": vault.seal_array(pa.array(plain), CTX_IDENTIFIER),
            }
        )
        con.register("bench_phones", table)
        con.execute(
            "INSERT INTO profile_identifiers SELECT 'OID' || lpad(i::VARCHAR, 8, '0'), 'phone', "
            "bidx, enc, 3, TIMESTAMP '2023-01-01', TIMESTAMP '2025-06-01' FROM bench_phones"
        )
        con.execute(
            "INSERT INTO identity_oneid SELECT 'phone', bidx, 'OID' || lpad(i::VARCHAR, 8, '0') "
            "FROM bench_phones"
        )
        con.execute(
            "INSERT INTO record_identifiers (record_id, record_kind, source_id, id_type, "
            "id_value, id_value_enc, observed_at) SELECT 'crm:' || i, 'contacts', 'crm', "
            "'phone', bidx, enc, TIMESTAMP '2023-01-01' FROM bench_phones"
        )
        con.unregister("bench_phones")
        console.print(f"  phones {hi:,}/{members:,}")
    n = members
    oid = "'OID' || lpad(i::VARCHAR, 8, '0')"
    con.execute(
        f"""
        INSERT INTO identity_persons SELECT {oid}, i, 'active', now(), now() FROM range({n}) t(i);
        INSERT INTO identity_oneid SELECT 'member_no', 'M' || i, {oid} FROM range({n}) t(i);
        INSERT INTO identity_oneid SELECT 'wechat_unionid', 'oU' || md5(i::VARCHAR), {oid}
            FROM range({n}) t(i);
        INSERT INTO profiles SELECT {oid}, '会员' || i, '会员' || i,
            CASE WHEN i % 5 = 0 THEN 'M' ELSE 'F' END, DATE '1980-01-01' + (i % 9000)::INTEGER,
            '上海', 'S' || lpad((1 + i % 20)::VARCHAR, 2, '0'), '顾问' || (i % 50), 'gold',
            'wechat_mp', TIMESTAMP '2023-01-01', TIMESTAMP '2025-06-01',
            TIMESTAMP '2023-02-01', TIMESTAMP '2025-05-01', 6, 4, 1280000, 213333, 20, now()
            FROM range({n}) t(i);
        INSERT INTO profile_traits SELECT {oid}, tr, v, v, 'most_recent', 'crm', 'crm:' || i,
            TIMESTAMP '2024-01-01', 3
            FROM range({n}) t(i), (VALUES ('name', '会员'), ('gender', 'F'),
                ('birthday', '1990-01-01'), ('city', '上海')) x(tr, v);
        INSERT INTO profile_identifiers SELECT {oid}, 'member_no', 'M' || i, NULL, 5,
            TIMESTAMP '2023-01-01', TIMESTAMP '2025-06-01' FROM range({n}) t(i);
        INSERT INTO profile_identifiers SELECT {oid}, 'wechat_unionid', 'oU' || md5(i::VARCHAR),
            NULL, 2, TIMESTAMP '2023-01-01', TIMESTAMP '2025-06-01' FROM range({n}) t(i);
        INSERT INTO profile_course_cards SELECT {oid}, 'HA0' || k, '玻尿酸填充', 5, 2, 3,
            TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-01'
            FROM range({n}) t(i), range(2) c(k) WHERE (i + k) % 3 = 0;
        INSERT INTO consents (consent_id, member_ref, purpose, channel, status, notice_version,
            notice_sha256, source, evidence, occurred_at, recorded_at, recorded_by)
            SELECT 'cs_' || i, 'one_id:' || {oid}, 'marketing_sms', 'sms', 'granted', 'v1',
            repeat('a', 64), 'mini_program', 'form-' || i, TIMESTAMP '2024-01-01',
            TIMESTAMP '2024-01-01', 'bench' FROM range({n}) t(i);
        """
    )
    synthesise_layering(con, n)
    con.execute("CHECKPOINT")
    console.print("  layering rows written; writing the profile documents")
    lookup.write_documents(con, None)
    con.execute("CHECKPOINT")
    key_text, _ = auth.create_api_key(con.cursor(), "bench", "marketer", "bench")
    (settings.workspace / "bench.key").write_text(key_text)
    store.close()
    console.print(f"synthesised {members:,} members in {time.perf_counter() - started:.1f} s")


TAGS = [
    ("new_customer", "新客", "New customer", "lifecycle", "boolean"),
    ("frequent_visitor", "高频到店用户", "Frequent visitor", "lifecycle", "boolean"),
    ("luxury_lover", "奢侈品偏好者", "Luxury lover", "preference", "boolean"),
    ("promotion_driven", "促销驱动型", "Promotion driven", "purchase", "boolean"),
    ("vip_regular", "VIP 高端服务常客", "VIP regular", "purchase", "boolean"),
    ("high_engagement", "高互动", "High engagement", "interaction", "boolean"),
    ("injection_lover", "注射类偏好", "Prefers injections", "preference", "boolean"),
    ("unused_course_card", "疗程卡未用完", "Unused course card", "treatment", "boolean"),
    ("many_no_shows", "爽约多次", "Many no-shows", "service", "boolean"),
    ("dormant", "沉睡", "Dormant", "lifecycle", "boolean"),
    ("value_tier", "价值分层", "Value tier", "value", "enum"),
    ("rfm_segment", "RFM 分组", "RFM segment", "value", "enum"),
]


def synthesise_layering(con: Any, n: int) -> None:
    """What `mecdp compute` writes, in its shape: 12 tag definitions; per member 3 tags with
    their history, a scores row; a treatment due date for every other member."""
    definitions = pa.table(
        {
            "tag_id": [t[0] for t in TAGS],
            "name_zh": [t[1] for t in TAGS],
            "name_en": [t[2] for t in TAGS],
            "category": [t[3] for t in TAGS],
            "value_type": [t[4] for t in TAGS],
            "k": list(range(len(TAGS))),
        }
    )
    con.register("bench_tags", definitions)
    oid = "'OID' || lpad(i::VARCHAR, 8, '0')"
    con.execute(
        f"""
        INSERT INTO tag_definitions SELECT tag_id, name_zh, name_en, NULL, 'crm', category,
            value_type, 'scheduled', '{{"kind": "trait"}}', 1, 'shipped', TRUE,
            TIMESTAMP '2025-06-01', 'bench' FROM bench_tags;
        CREATE TEMP TABLE bench_member_tags AS
            SELECT {oid} AS one_id, b.tag_id,
                   CASE b.value_type WHEN 'enum' THEN 'high_value' ELSE 'true' END AS value
            FROM range({n}) t(i), range(3) j(j)
            JOIN bench_tags b ON b.k = (i + 4 * j) % {len(TAGS)};
        INSERT INTO customer_tags SELECT one_id, tag_id, value, 1, TIMESTAMP '2025-06-01'
            FROM bench_member_tags ORDER BY one_id;  -- sorted, as a compute run stores it
        INSERT INTO customer_tag_history SELECT one_id, tag_id, 'gained', value, NULL, 1,
            TIMESTAMP '2025-03-01', 'run_bench' FROM bench_member_tags ORDER BY one_id;
        DROP TABLE bench_member_tags;
        INSERT INTO scores (one_id, as_of, recency_days, frequency, monetary_fen, r_score,
            f_score, m_score, rfm_segment, value_tier, p_alive, expected_purchases_90,
            expected_purchases_180, expected_purchases_365, clv_12m_fen, purchase_tier,
            interaction_tier, interaction_channels, interactions_90d, preferred_category,
            run_id)
            SELECT {oid}, TIMESTAMP '2025-06-01', i % 400, 1 + i % 9, 100000 * (1 + i % 50),
            1 + i % 5, 1 + (i // 5) % 5, 1 + (i // 25) % 5, 'important_value', 'high_value',
            0.8, 0.5, 1.0, 2.0, 3000000.0, 'regular', 'low', 2, 3, '注射', 'run_bench'
            FROM range({n}) t(i);
        INSERT INTO treatment_due SELECT {oid}, 'BTX01', '肉毒素除皱', '注射',
            TIMESTAMP '2025-01-10', 150, DATE '2025-06-09', 'overdue', 'run_bench'
            FROM range({n}) t(i) WHERE i % 2 = 0;
        """
    )
    con.unregister("bench_tags")


def sample_refs(members: int, count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    refs = []
    for _ in range(count):
        i = rng.randrange(members)
        refs.append(f"OID{i:08d}" if rng.random() < 0.5 else f"phone:139{i:08d}")
    return refs


REFERENCE_SQL = """
SELECT document FROM profile_documents WHERE one_id = $1
UNION ALL SELECT status FROM consents WHERE member_ref = $2
UNION ALL SELECT value FROM customer_tags WHERE one_id = $1
UNION ALL SELECT rfm_segment FROM scores WHERE one_id = $1
"""


def reference(settings: Settings, refs: list[str], threads: int = 1) -> dict[str, float]:
    """Bare DuckDB reads per lookup, closed loop in `threads` threads (a cursor each): phones
    mapped to the one_id by blind index through the indexed profile_identifiers, then in one
    statement the person's document, consent ledger rows, tags and scores by indexed point
    reads (no HTTP, no authentication, no view, no masking)."""
    store = open_store(settings.db_path)
    key = settings.key()
    latencies: list[float] = []

    def work(share: list[str]) -> None:
        cur = store.con.cursor()
        for ref in share:
            t0 = time.perf_counter()
            if ref.startswith("phone:"):
                row = cur.execute(
                    "SELECT one_id FROM profile_identifiers WHERE id_value = ?",
                    [blind_index(key, "phone", "+86" + ref[6:])],
                ).fetchone()
                one_id = str(row[0]) if row else ""
            else:
                one_id = ref
            cur.execute(REFERENCE_SQL, [one_id, "one_id:" + one_id]).fetchall()
            latencies.append(time.perf_counter() - t0)
        cur.close()

    workers = [threading.Thread(target=work, args=(refs[i::threads],)) for i in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    store.close()
    return _summary(latencies, elapsed)


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "mean_ms": 1000 * statistics.fmean(ordered),
        "rps": len(ordered) / seconds if seconds else 0.0,
    }


# --------------------------------------------------------------------------- load process


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _load(
    host: str, port: int, key: str, refs: list[str], rate: float, seconds: float, conns: int
) -> dict[str, Any]:
    """Open loop at `rate` (0: closed loop, as fast as `conns` connections go) for `seconds`
    (0: closed loop over every ref exactly once). An open loop the server cannot keep up with
    stops sending at twice its planned length; the requests left unsent count as errors."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.2
    deadline = start + seconds
    give_up = start + 2 * seconds

    async def worker(w: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        k = w
        interval = conns / rate if rate else 0.0
        while True:
            scheduled = start + k // conns * interval if rate else time.perf_counter()
            if (scheduled > deadline) if seconds else k >= len(refs):
                break
            if rate and time.perf_counter() > give_up:
                errors += int((deadline - scheduled) / interval) + 1
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ref = refs[k % len(refs)]
            raw = (
                f"GET /v1/profiles/{ref} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {key}\r\n\r\n"
            ).encode()
            status = await _request(reader, writer, raw)
            if status != 200:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)
            k += conns
        writer.close()

    await asyncio.gather(*(worker(w) for w in range(conns)))
    elapsed = time.perf_counter() - start
    return {**_summary(latencies, elapsed), "errors": errors}


class _MinimalHttp(asyncio.Protocol):
    """The reference server: reads requests up to the blank line, answers `body`."""

    def __init__(self, body: bytes) -> None:
        self.response = (
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ncontent-type: application/json\r\n\r\n"
            % len(body)
        ) + body
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's own class

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            assert self.transport is not None
            self.transport.write(self.response)


def reference_server_main(args: argparse.Namespace) -> None:
    import uvloop

    body = Path(args.body).read_bytes()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _MinimalHttp(body), "127.0.0.1", args.port)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _serve(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)


def load_main(args: argparse.Namespace) -> None:
    refs = sample_refs(args.members, args.sample, seed=11)
    result = asyncio.run(
        _load(args.host, args.port, args.key, refs, args.rate, args.seconds, args.conns)
    )
    sys.stdout.write(json.dumps(result) + "\n")


# --------------------------------------------------------------------------- driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_load(
    port: int, key: str, args: argparse.Namespace, rate: float, seconds: float, conns: int
) -> Any:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            "--port",
            str(port),
            "--key",
            key,
            "--members",
            str(args.members),
            "--sample",
            str(args.sample),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--conns",
            str(conns),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument(
        "--sample", type=int, default=5000, help="distinct members looked up (each once to warm)"
    )
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--reference-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--body", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main(args)
        return
    if args.reference_server:
        reference_server_main(args)
        return
    console = Console()
    tmp = tempfile.TemporaryDirectory(prefix="mecdp-bench-profile-")
    workspace = args.workspace or Path(tmp.name) / "ws"
    settings = Settings(workspace=workspace)
    init_workspace(settings)
    if not (workspace / "bench.key").exists():
        synthesise(settings, args.members, console)
    key = (workspace / "bench.key").read_text().strip()
    load_before = os.getloadavg()[0]
    refs = sample_refs(args.members, args.sample, seed=11)
    reference(settings, refs)  # first reads load the index nodes and blocks: warm up
    ref_serial = reference(settings, refs)
    ref_threads = reference(settings, refs, threads=2)
    port = _free_port()
    server = _serve(
        [sys.executable, "-m", "mecdp", "serve", "--port", str(port)],
        port,
        {**os.environ, "MECDP_WORKSPACE": str(workspace)},
    )
    try:
        cold = _run_load(port, key, args, 0, 0, 8)  # every member once: warms the store
        open_loop = _run_load(port, key, args, args.rate, args.seconds, args.conns)
        closed_loop = _run_load(port, key, args, 0, args.seconds, 8)
        rss = _rss_mb(server.pid)
        with socket.create_connection(("127.0.0.1", port)) as conn:  # one answer's bytes
            conn.sendall(
                f"GET /v1/profiles/{refs[0]} HTTP/1.1\r\nHost: x\r\nAuthorization: "
                f"Bearer {key}\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b"".join(iter(lambda: conn.recv(65536), b"")).partition(b"\r\n\r\n")[2]
    finally:
        server.terminate()
        server.wait(timeout=30)
    body_file = workspace / "bench.answer.json"
    body_file.write_bytes(answer)
    ref_port = _free_port()
    minimal = _serve(
        [sys.executable, __file__, "--reference-server", "--port", str(ref_port), "--body",
         str(body_file)],
        ref_port,
        dict(os.environ),
    )  # fmt: skip
    try:
        minimal_open = _run_load(ref_port, key, args, args.rate, args.seconds, args.conns)
        minimal_closed = _run_load(ref_port, key, args, 0, args.seconds, 8)
    finally:
        minimal.terminate()
        minimal.wait(timeout=30)
    load_after = os.getloadavg()[0]
    table = Table(
        title=f"Profile lookup at {args.members:,} members (2 cores; load average "
        f"{load_before:.1f} before, {load_after:.1f} after)"
    )
    for col in ("what", "requests/s", "p50 ms", "p99 ms", "mean ms", "errors"):
        table.add_column(col, justify="right" if col != "what" else "left")
    rows = [
        ("API, first lookup of each member (8 connections)", cold),
        (f"API, open loop at {args.rate:,.0f}/s", open_loop),
        ("API, closed loop (8 connections)", closed_loop),
        ("reference: bare DuckDB reads, 1 thread", {**ref_serial, "errors": 0}),
        ("reference: bare DuckDB reads, 2 threads", {**ref_threads, "errors": 0}),
        (f"reference: minimal HTTP server, open loop at {args.rate:,.0f}/s", minimal_open),
        ("reference: minimal HTTP server, closed loop (8 connections)", minimal_closed),
    ]
    for name, r in rows:
        table.add_row(
            name,
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['mean_ms']:.2f}",
            str(r["errors"]),
        )
    console.print(table)
    console.print(
        f"server resident memory after the run: {rss:,.0f} MB; answer {len(answer):,} bytes"
    )
    throughput = closed_loop["rps"] / ref_threads["rps"] if ref_threads["rps"] else 0.0
    vs_minimal = closed_loop["rps"] / minimal_closed["rps"] if minimal_closed["rps"] else 0.0
    latency = closed_loop["p50_ms"] / ref_serial["p50_ms"] if ref_serial["p50_ms"] else 0.0

    def verdict(run: dict[str, float]) -> str:
        ok = run["p99_ms"] <= 20 and run["rps"] >= 0.98 * min(args.rate, 1000)
        return "[green]met[/green]" if ok else "[red]not met[/red]"

    console.print(
        f"API closed-loop requests/s / reference (2 threads) = {throughput:.2f}; "
        f"API closed-loop p50 / reference p50 (1 thread) = {latency:.1f}x; "
        f"API closed-loop requests/s / minimal HTTP server = {vs_minimal:.2f}\n"
        f"target p99 <= 20 ms at >= 1,000 requests/s: {verdict(open_loop)} for repeated "
        f"lookups of {args.sample:,} members (served from the cache); {verdict(cold)} for "
        f"first lookups ({cold['rps']:,.0f} requests/s, p99 {cold['p99_ms']:.1f} ms)"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()

"""Collector throughput and ack latency, durable, against the real server.

Starts `mecdp serve` (uvicorn, httptools, uvloop, no access log) on a fresh workspace in a
subprocess, drives it from separate load processes over keep-alive loopback connections,
and prints events/s, requests/s and p50/p99 ack latency for

* batches of 100 events (`/v1/batch`) and single events (`/v1/t`) to MeCDP,
* the same load against a trivial uvicorn ASGI app that answers 200 without storing,
* a bare DuckDB Arrow INSERT + COMMIT of the same batches, in-process, one commit per batch.

Every acknowledged event is checked in `raw_events` afterwards. Beside the rates, the CPU the
server process used per acknowledged event (steadier than rates when the machine is shared)
and the load average are printed. `--no-stream-processor` serves the collector alone.

    .venv/bin/python benchmarks/bench_collect.py [--duration 5] [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Set by --traits: every event carries personal traits (phone, email, name) in
# context.traits, which the collector encrypts before the raw log.
WITH_TRAITS = os.environ.get("MECDP_BENCH_TRAITS") == "1"


def make_event(prefix: str, n: int) -> dict[str, object]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = _event(prefix, n, now)
    if WITH_TRAITS:
        context = event["context"]
        assert isinstance(context, dict)  # noqa: S101 - built just above
        context["traits"] = {
            "phone": f"+86138{n % 100_000_000:08d}",
            "email": f"member{n % 2000}@example.com",
            "name": "张三",
        }
    return event


def _event(prefix: str, n: int, now: str) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Appointment Booked",
        "messageId": f"{prefix}-{n}",
        "anonymousId": f"anon-{n % 5000}",
        "userId": f"member-{n % 2000}",
        "originalTimestamp": now,
        "properties": {"store": "SH01", "item": "水光针", "price": 1280, "campaign": "spring"},
        "context": {
            "library": {"name": "analytics.js", "version": "2.11.1"},
            "page": {"path": "/booking", "url": "https://clinic.example.com/booking"},
            "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
            "ip": "203.0.113.7",
        },
    }


def build_requests(
    write_key: str, path: str, per_request: int, count: int, prefix: str
) -> list[bytes]:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    out = []
    n = 0
    for _ in range(count):
        if per_request == 1:
            body = orjson.dumps(make_event(prefix, n))
            n += 1
        else:
            batch = []
            for _ in range(per_request):
                batch.append(make_event(prefix, n))
                n += 1
            body = orjson.dumps({"batch": batch, "sentAt": batch[-1]["originalTimestamp"]})
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _drive(
    port: int, requests: list[bytes], connections: int, duration: float
) -> tuple[int, int, list[float]]:
    """Send requests over `connections` keep-alive connections until `duration` is over."""
    latencies: list[float] = []
    ok = 0
    failed = 0
    cursor = 0
    stop_at = time.perf_counter() + duration

    async def one_connection() -> None:
        nonlocal ok, failed, cursor
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at and cursor < len(requests):
                req = requests[cursor]
                cursor += 1
                started = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if head.startswith(b"HTTP/1.1 200"):
                    ok += 1
                else:
                    failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return ok, failed, latencies


def load_process(
    args: tuple[int, str, str, int, int, int, float, str],
) -> tuple[int, int, list[float], float]:
    port, write_key, path, per_request, count, connections, duration, prefix = args
    requests = build_requests(write_key, path, per_request, count, prefix)
    started = time.perf_counter()
    ok, failed, latencies = asyncio.run(_drive(port, requests, connections, duration))
    return ok, failed, latencies, time.perf_counter() - started


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    events: int
    requests: int
    failed: int
    seconds: float
    latencies: list[float]
    # CPU the server process used per acknowledged event: steadier than rates on a busy box
    server_cpu_s: float | None = None

    def row(self) -> tuple[str, str, str, str, str, str, str]:
        lat = sorted(self.latencies)

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))] * 1000:.1f}" if lat else "-"

        cpu = (
            f"{self.server_cpu_s * 1e6 / self.events:,.1f}"
            if self.server_cpu_s is not None and self.events
            else "-"
        )
        return (
            self.name,
            f"{self.events / self.seconds:,.0f}",
            f"{self.requests / self.seconds:,.0f}",
            pct(0.50),
            pct(0.99),
            cpu,
            str(self.failed),
        )


def run_load(
    name: str,
    server_pid: int,
    port: int,
    write_key: str,
    path: str,
    per_request: int,
    processes: int,
    connections: int,
    duration: float,
) -> Result:
    # enough pre-built requests for the duration at a generous rate
    count = int(duration * (60_000 // per_request if per_request > 1 else 8_000) / processes)
    jobs = [
        (port, write_key, path, per_request, count, connections, duration, uuid.uuid4().hex)
        for _ in range(processes)
    ]
    with mp.get_context("spawn").Pool(processes) as pool:
        cpu_before = process_cpu_seconds(server_pid)
        outs = pool.map(load_process, jobs)
        cpu_after = process_cpu_seconds(server_pid)
    ok = sum(o[0] for o in outs)
    failed = sum(o[1] for o in outs)
    seconds = max(o[3] for o in outs)
    latencies = [x for o in outs for x in o[2]]
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Result(name, ok * per_request, ok, failed, seconds, latencies, cpu)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def start_mecdp(workspace: Path, port: int, *, stream_processor: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MECDP_STREAM_PROCESSOR": "true" if stream_processor else "false"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mecdp",
            "--workspace",
            str(workspace),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    wait_port(port, proc, timeout=90)
    return proc


TRIVIAL_APP = textwrap.dedent(
    """
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            msg = await receive()
            more = msg.get("more_body", False)
        body = b'{"success":true}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]),
                log_level="warning", access_log=False)
    """
)


def bare_duckdb(batches: int, per_batch: int) -> Result:
    """Reference: the same rows, one Arrow INSERT ... ON CONFLICT + COMMIT per batch."""
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "ref.duckdb"))
        con.execute(
            "CREATE TABLE raw_events (seq BIGINT NOT NULL, source_id VARCHAR NOT NULL, "
            "message_id VARCHAR NOT NULL, received_at TIMESTAMP NOT NULL, event_time TIMESTAMP, "
            "payload VARCHAR NOT NULL, PRIMARY KEY (source_id, message_id))"
        )
        prefix = uuid.uuid4().hex
        prepared = []
        n = 0
        for _ in range(batches):
            rows = [make_event(prefix, n + i) for i in range(per_batch)]
            n += per_batch
            prepared.append(rows)
        latencies = []
        seq = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        for rows in prepared:
            t0 = time.perf_counter()
            now = datetime.now(UTC).replace(tzinfo=None)
            table = pa.table(
                {
                    "seq": pa.array(range(seq, seq + len(rows)), pa.int64()),
                    "source_id": ["web"] * len(rows),
                    "message_id": [str(r["messageId"]) for r in rows],
                    "received_at": pa.array([now] * len(rows), pa.timestamp("us")),
                    "event_time": pa.array([now] * len(rows), pa.timestamp("us")),
                    "payload": [orjson.dumps(r).decode() for r in rows],
                }
            )
            seq += len(rows)
            con.execute("BEGIN")
            con.register("b", table)
            con.execute(
                "INSERT INTO raw_events SELECT * FROM b ON CONFLICT DO NOTHING RETURNING message_id"
            ).fetchall()
            con.unregister("b")
            con.execute("COMMIT")
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        con.close()
    return Result(
        f"ref: bare DuckDB insert+commit x{per_batch}",
        batches * per_batch,
        batches,
        0,
        seconds,
        latencies,
        cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--processes", type=int, default=1, help="load processes")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--single-connections", type=int, default=32)
    parser.add_argument(
        "--traits", action="store_true", help="personal traits (phone, email, name) in events"
    )
    parser.add_argument(
        "--no-stream-processor",
        action="store_true",
        help="serve without the stream processor (the collector alone)",
    )
    args = parser.parse_args()
    if args.traits:  # the spawned load processes read it from the environment
        os.environ["MECDP_BENCH_TRAITS"] = "1"
        global WITH_TRAITS
        WITH_TRAITS = True

    from mecdp.collect.sources import add_source
    from mecdp.config import Settings, init_workspace
    from mecdp.store import open_store

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        settings = Settings(workspace=workspace)
        init_workspace(settings)
        store = open_store(settings.db_path)
        key = add_source(store.cursor(), "bench_web", channel="web").write_key
        store.close()

        port = free_port()
        load_before = os.getloadavg()[0]
        proc = start_mecdp(workspace, port, stream_processor=not args.no_stream_processor)
        try:
            results.append(
                run_load(
                    "MeCDP /v1/batch x100",
                    proc.pid,
                    port,
                    key,
                    "/v1/batch",
                    100,
                    args.processes,
                    args.batch_connections,
                    args.duration,
                )
            )
            results.append(
                run_load(
                    "MeCDP /v1/t single",
                    proc.pid,
                    port,
                    key,
                    "/v1/t",
                    1,
                    args.processes,
                    args.single_connections,
                    args.duration,
                )
            )
        finally:
            proc.send_signal(2)
            # the stream processor finishes its batch first: behind after a load, that takes a while
            proc.wait(timeout=180)
        con = duckdb.connect(str(settings.db_path), read_only=True)
        stored = con.execute("SELECT count(*) FROM raw_events").fetchone()
        con.close()
        acked = results[0].events + results[1].events
        assert stored is not None
        durable = "ok" if stored[0] >= acked else "MISSING"
        print(f"acknowledged {acked:,} events; raw_events holds {stored[0]:,}: {durable}")

        port = free_port()
        ref = subprocess.Popen([sys.executable, "-c", TRIVIAL_APP, str(port)], cwd=ROOT)
        try:
            wait_port(port, ref)
            results.append(
                run_load(
                    "ref: trivial uvicorn x100",
                    ref.pid,
                    port,
                    key,
                    "/v1/batch",
                    100,
                    args.processes,
                    args.batch_connections,
                    args.duration,
                )
            )
            results.append(
                run_load(
                    "ref: trivial uvicorn single",
                    ref.pid,
                    port,
                    key,
                    "/v1/t",
                    1,
                    args.processes,
                    args.single_connections,
                    args.duration,
                )
            )
        finally:
            ref.send_signal(2)
            ref.wait(timeout=30)
        results.append(bare_duckdb(batches=max(1, int(args.duration * 100)), per_batch=100))

    header = ("scenario", "events/s", "req/s", "p50 ms", "p99 ms", "srv cpu us/ev", "failed")
    rows = [header] + [r.row() for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(
        f"cpus: {os.cpu_count()}, load processes: {args.processes}, "
        f"{args.duration:.0f} s per scenario, stream processor "
        f"{'off' if args.no_stream_processor else 'on'}, load average (1 min) "
        f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    for row in rows:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    by_name = {r.name: r for r in results}

    def rate(name: str) -> float:
        r = by_name[name]
        return r.events / r.seconds

    print(
        "ratios: batch vs trivial server "
        f"{rate('MeCDP /v1/batch x100') / rate('ref: trivial uvicorn x100'):.2f}, "
        f"single vs trivial server "
        f"{rate('MeCDP /v1/t single') / rate('ref: trivial uvicorn single'):.2f}, "
        f"batch vs bare DuckDB commit-per-batch "
        f"{rate('MeCDP /v1/batch x100') / rate('ref: bare DuckDB insert+commit x100'):.2f}"
    )


if __name__ == "__main__":
    main()

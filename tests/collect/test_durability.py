"""SIGKILL the collector mid-load: every acknowledged message is in the raw log exactly once,
and the stream processor resumes from its checkpoint without losing or repeating events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from collect.collector_server import RunningServer, free_port, make_workspace

SENDERS = 6
BATCH = 50
MAX_BATCHES_PER_SENDER = 400


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    workspace, keys = make_workspace(tmp_path / "ws", {"web_site": "web"})
    server = RunningServer(workspace=workspace, port=free_port(), write_keys=keys)
    server.start()
    key = keys["web_site"]
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        with httpx.Client(base_url=server.url, auth=(key, ""), timeout=10) as client:
            for b in range(MAX_BATCHES_PER_SENDER):
                if stop.is_set():
                    return
                ids = [f"s{n}-b{b}-e{i}" for i in range(BATCH)]
                batch = [
                    {
                        "type": "track",
                        "event": "Tap",
                        "anonymousId": f"a{n}",
                        "messageId": mid,
                        "properties": {"i": i},
                    }
                    for i, mid in enumerate(ids)
                ]
                try:
                    r = client.post("/v1/batch", json={"batch": batch})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acked.update(ids)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 3000:
                break
        time.sleep(0.05)
    server.kill()  # SIGKILL mid-load
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(acked) >= BATCH, "no batch was acknowledged before the kill"

    # restart on the same workspace; the processor catches up from its checkpoint
    server.start()
    try:
        status = server.status(wait_ms=30_000)
        assert status["processor"]["lag"] == 0, status
        # one more batch after the restart is stored and processed too
        r = httpx.post(
            f"{server.url}/v1/batch",
            auth=(key, ""),
            json={
                "batch": [
                    {"type": "track", "event": "After", "anonymousId": "z", "messageId": "after-1"}
                ]
            },
        )
        assert r.status_code == 200
        acked.add("after-1")
        assert server.status(wait_ms=30_000)["processor"]["lag"] == 0
    finally:
        server.stop()

    raw = server.query("SELECT message_id, count(*) FROM raw_events GROUP BY 1")
    stored = {m: c for m, c in raw}
    missing = acked - stored.keys()
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
    assert all(c == 1 for c in stored.values())
    events = server.query("SELECT message_id, count(*) FROM events GROUP BY 1")
    assert {m for m, _ in events} == set(stored)
    assert all(c == 1 for _, c in events)
    seqs = server.query("SELECT count(DISTINCT seq), count(*) FROM raw_events")
    assert seqs[0][0] == seqs[0][1]

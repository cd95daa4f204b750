"""`mecdp demo`: generate the demo chain and run it through the real ingestion paths.

Files go through the file importer; tracking events go over HTTP to the collector of a
server this process starts (and keeps serving unless --no-serve).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from rich.console import Console

from mecdp.api.app import create_app
from mecdp.api.state import AppState
from mecdp.collect.importer import import_file
from mecdp.collect.mapping import load_mapping
from mecdp.collect.quality import quality_report
from mecdp.collect.sources import ensure_source
from mecdp.config import Settings, init_workspace
from mecdp.demo.generator import DemoChain, generate_chain
from mecdp.errors import MeCdpError
from mecdp.store import Store, open_store
from mecdp.terminal import print_quality, progress_bar

EVENT_BATCH = 100


def run_demo(settings: Settings, *, members: int, seed: int, serve: bool, console: Console) -> None:
    init_workspace(settings)
    store = open_store(settings.db_path)
    app = create_app(settings, store=store)
    state: AppState = app.state.mecdp
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="mecdp-server", daemon=True)
    thread.start()
    _wait_started(server, thread)
    base_url = f"http://{settings.host}:{settings.port}"
    try:
        started = time.perf_counter()
        with console.status(f"generating the demo chain ({members:,} members, seed {seed})"):
            chain = generate_chain(settings.workspace / "demo", members=members, seed=seed)
        console.print(
            f"generated {len(chain.files)} files and the tracking events "
            f"in {time.perf_counter() - started:.1f} s → {chain.out_dir}"
        )
        load_reference_data(store, chain)
        import_demo_files(store, settings, chain, console)
        send_demo_events(store, chain, base_url, console)
        wait_for_stream(state, console)
        build_identities_and_profiles(store, settings, console)
        compute_layering(store, settings, console)
        print_summary(store, console)
        users, password = ensure_demo_users(store, settings, chain)
        console.print(f"\nAPI: {base_url}  (OpenAPI: {base_url}/docs)")
        console.print(f"控制台 Console: {base_url}/console")
        console.print(f"demo users, password {password} (kept in secrets/demo.password):")
        for username, role, store_code in users:
            where = f" ({store_code})" if store_code else ""
            console.print(f"  {username}: {role}{where}", highlight=False)
        if serve:
            console.print("serving; press Ctrl-C to stop")
            while thread.is_alive():
                thread.join(timeout=1)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def ensure_demo_users(
    store: Store, settings: Settings, chain: DemoChain
) -> tuple[list[tuple[str, str, str | None]], str]:
    """One user per role (the consultant bound to the first clinic), created once, sharing a
    random password kept in the workspace secrets so the console can be tried at once."""
    from mecdp.privacy.auth import add_user

    secret = settings.secrets_dir / "demo.password"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(12))
        secret.chmod(0o600)
    password = secret.read_text().strip()
    first_store = str(chain.stores[0]["store_code"]) if chain.stores else None
    users: list[tuple[str, str, str | None]] = [
        ("admin", "admin", None),
        ("marketer", "marketer", None),
        ("consultant", "consultant", first_store),
        ("analyst", "analyst", None),
        ("compliance", "compliance", None),
    ]
    cur = store.cursor()
    for username, role, store_code in users:
        if not cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            add_user(cur, username, password, role, store_code)
    return users, password


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise MeCdpError("the server did not start (is the port in use?)")
        if time.monotonic() > deadline:
            raise MeCdpError("the server did not start within 30 s")
        time.sleep(0.05)


def load_reference_data(store: Store, chain: DemoChain) -> None:
    """Stores and the treatment catalog (master data, replaced on each run)."""
    import pyarrow as pa

    cur = store.cursor()
    stores = pa.Table.from_pylist(chain.stores)
    catalog = pa.Table.from_pylist(chain.catalog)
    cur.register("demo_stores", stores)
    cur.register("demo_catalog", catalog)
    cur.execute("INSERT OR REPLACE INTO stores BY NAME SELECT * FROM demo_stores")
    cur.execute("INSERT OR REPLACE INTO catalog BY NAME SELECT * FROM demo_catalog")
    cur.unregister("demo_stores")
    cur.unregister("demo_catalog")


def import_demo_files(store: Store, settings: Settings, chain: DemoChain, console: Console) -> None:
    cur = store.cursor()
    with progress_bar(console) as bar:
        for f in chain.files:
            kind = load_mapping(f.mapping, settings.workspace).kind
            ensure_source(cur, f.source, channel=f.channel, kind=kind, mapping=f.mapping)
            task = bar.add_task(f"{f.source} ← {f.path.name}", total=f.rows)

            def advance(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total)

            import_file(store, settings, f.path, source_id=f.source, progress=advance)
            bar.update(task, completed=f.rows)


def _event_batches(path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with path.open("rb") as fh:
        for line in fh:
            message = orjson.loads(line)
            source = message.pop("_source")
            pending[source].append(message)
            if len(pending[source]) == EVENT_BATCH:
                yield source, pending.pop(source)
    for source, batch in pending.items():
        yield source, batch


def send_demo_events(store: Store, chain: DemoChain, base_url: str, console: Console) -> None:
    """POST the tracking events to the collector as an SDK would (batches, Basic auth)."""
    cur = store.cursor()
    keys = {
        name: ensure_source(cur, name, channel=channel).write_key
        for name, channel in chain.event_sources
    }
    total = sum(1 for _ in chain.events_path.open("rb"))
    with httpx.Client(base_url=base_url, timeout=60) as http, progress_bar(console) as bar:
        task = bar.add_task("tracking events → HTTP collector", total=total)

        def post(item: tuple[str, list[dict[str, Any]]]) -> int:
            source, batch = item
            auth = base64.b64encode(f"{keys[source]}:".encode()).decode()
            response = http.post(
                "/v1/batch",
                content=orjson.dumps({"batch": batch}),
                headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
            )
            if response.status_code != 200:
                console.print(f"[yellow]collector answered {response.status_code}: {response.text}")
            return len(batch)

        with ThreadPoolExecutor(max_workers=4) as pool:
            for n in pool.map(post, _event_batches(chain.events_path)):
                bar.advance(task, n)


def wait_for_stream(state: AppState, console: Console) -> None:
    """Let the stream processor catch up with the raw log before the summary."""
    for worker in state.workers:
        drain = getattr(worker, "drain", None)
        if drain is not None:
            with console.status("stream processor catching up"):
                drain(120)


def build_identities_and_profiles(store: Store, settings: Settings, console: Console) -> None:
    """OneID over everything loaded, then the golden records (the 360° profiles)."""
    from mecdp.identity.service import resolve_identities
    from mecdp.profiles.service import build_profiles

    with console.status("OneID: resolving identities") as status:
        resolved = resolve_identities(
            store, workspace=settings.workspace, progress=lambda m: status.update(f"OneID: {m}")
        )
    console.print(f"OneID: {resolved.records:,} records → {resolved.persons:,} persons")
    with console.status("building golden records (profiles)"):
        built = build_profiles(store, workspace=settings.workspace)
    console.print(
        f"profiles: {built.persons:,} golden records, {built.timeline_rows:,} timeline rows "
        f"in {built.seconds:.1f} s"
    )


def compute_layering(store: Store, settings: Settings, console: Console) -> None:
    """Member layering as of a quarter before the demo's "today" and as of today, so the
    tag history and the tier migration matrix have two points to compare."""
    from mecdp.compute.service import compute_all
    from mecdp.demo.generator import TODAY

    today = TODAY.astype(datetime)
    for as_of in (today - timedelta(days=90), today):
        with console.status(f"member layering as of {as_of:%Y-%m-%d}") as status:
            report = compute_all(
                store,
                workspace=settings.workspace,
                as_of=as_of,
                progress=lambda label, _d, _t: status.update(f"member layering: {label}"),
            )
        console.print(
            f"layering as of {as_of:%Y-%m-%d}: {report.members:,} members, "
            f"{report.tagged:,} tags ({report.tag_changes:,} changes), "
            f"{report.due:,} treatment due dates in {report.seconds:.1f} s"
        )


def print_summary(store: Store, console: Console) -> None:
    console.print()
    print_quality(console, [q.to_dict() for q in quality_report(store.cursor())])

"""The HTTP application: collector, admin API, index page. `mecdp serve` runs it.

The server process owns the DuckDB store; the CLI's writing verbs go through these routes
while it runs (see `mecdp.api.client`).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from mecdp import __version__
from mecdp.api.admin import build_admin_router
from mecdp.api.deps import PUBLIC
from mecdp.api.errors import install_error_handlers
from mecdp.api.layering import install_layering
from mecdp.api.privacy import install_privacy
from mecdp.api.profiles import ProfileFastPath, build_profiles_router
from mecdp.api.state import AppState
from mecdp.collect.api import install_collector
from mecdp.collect.quality import quality_report
from mecdp.config import Settings, init_workspace
from mecdp.console.layering_views import install_layering_console
from mecdp.console.views import install_console
from mecdp.identity.api import build_identity_router
from mecdp.profiles.serving import ServingCache
from mecdp.store import Store, open_store


class MeCdpApp(FastAPI):
    """The FastAPI app, with the profile fast path asked first: a repeated masked lookup is
    answered before FastAPI's own per-request work (telemetry checks, middleware, routing),
    which costs more than the answer."""

    fast_path: ProfileFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is not None and await self.fast_path.answered(scope, send):
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, store: Store | None = None, write_server_file: bool = True
) -> FastAPI:
    """Build the app; it owns the store (opened here unless given) for its lifetime."""
    init_workspace(settings)
    state = AppState(settings=settings, store=store or open_store(settings.db_path))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for worker in state.workers:
            worker.start()
        if write_server_file:
            settings.server_file.write_text(
                json.dumps({"url": f"http://{settings.host}:{settings.port}", "pid": os.getpid()})
            )
        try:
            yield
        finally:
            if write_server_file:
                settings.server_file.unlink(missing_ok=True)
            for worker in reversed(state.workers):
                worker.stop()
            state.store.close()

    app = MeCdpApp(
        title="MeCDP",
        version=__version__,
        description="Customer data platform for medical-aesthetics clinic chains",
        lifespan=lifespan,
    )
    app.state.mecdp = state
    state.serving = ServingCache(state.store)
    app.fast_path = ProfileFastPath(state)
    install_error_handlers(app)
    install_collector(app, state)
    app.include_router(build_admin_router(state))
    install_privacy(app, state)
    app.include_router(build_identity_router(state))
    app.include_router(build_profiles_router(state))
    install_layering(app, state)  # routes + the compute scheduler (after the stream workers)
    install_console(app, state)
    install_layering_console(app, state)  # after install_layering: uses its scheduler

    @app.get("/healthz", include_in_schema=False, dependencies=[PUBLIC])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=[PUBLIC])
    def index() -> str:
        return render_index(state)

    return app


def render_index(state: AppState) -> str:
    """A plain status page until the console lands: sources and what they delivered."""
    rows = quality_report(state.store.cursor())
    body = "".join(
        f"<tr><td>{html.escape(r.source_id)}</td><td>{html.escape(r.channel)}</td>"
        f"<td>{html.escape(r.kind)}</td><td>{r.received:,}</td><td>{r.accepted:,}</td>"
        f"<td>{r.quarantined:,}</td><td>{r.duplicates:,}</td></tr>"
        for r in rows
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>MeCDP 客户数据平台</title>
<style>body{{font-family:sans-serif;margin:2rem}}td,th{{padding:.3rem .8rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>MeCDP 客户数据平台</h1>
<p>版本 {__version__} · <a href="/console">控制台 Console</a> ·
<a href="/docs">API 文档 (OpenAPI)</a></p>
<h2>数据源 Sources</h2>
<table><tr><th>数据源</th><th>渠道</th><th>类型</th><th>接收</th><th>接受</th><th>隔离</th>
<th>重复</th></tr>{body}</table></body></html>"""

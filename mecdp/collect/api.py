"""The HTTP collector, compatible with the Segment and RudderStack tracking APIs.

Routes (all answer CORS preflights and echo the caller's Origin):

* `POST /v1/batch`, `/v1/import`, `/beacon/v1/batch` - a batch `{"batch": [...], "sentAt"}`
* `POST /v1/identify|track|page|screen|group|alias` and the browser short paths `/v1/i|t|p|s|g|a`
* `GET /v1/projects/{writeKey}/settings` (analytics.js) and `GET /sourceConfig` (RudderStack JS)
* `GET /v1/collector/status[?wait_ms=N]` - writer and stream-processor progress, no personal data

The write key comes from Basic auth (username), `?writeKey=`, or the body's `writeKey`. A 200
is sent only after the messages are committed to the raw log (`collect/writer.py`).

The collector paths are served by a lean ASGI middleware in front of FastAPI (no per-request
validation or dependency resolution); every other path goes on to FastAPI unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from mecdp.api.state import AppState
from mecdp.collect.events import (
    AcceptedMessage,
    RejectedMessage,
    body_too_large,
    check_content_type,
    decode_body,
    messages_of,
    parse_json,
    utc_now,
    validate_message,
)
from mecdp.collect.processor import StreamProcessor
from mecdp.collect.writer import Arrival, QuarantineEntry, RawLogWriter, WriteRequest
from mecdp.errors import AuthenticationError, InputError, MeCdpError, PermissionDenied
from mecdp.privacy.vault import vault_for

BATCH_PATHS = ("/v1/batch", "/v1/import", "/beacon/v1/batch")
SINGLE_PATHS = {
    "/v1/identify": "identify",
    "/v1/track": "track",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/group": "group",
    "/v1/alias": "alias",
    "/v1/i": "identify",
    "/v1/t": "track",
    "/v1/p": "page",
    "/v1/s": "screen",
    "/v1/g": "group",
    "/v1/a": "alias",
}
COLLECT_PATHS: dict[str, str | None] = {**dict.fromkeys(BATCH_PATHS), **SINGLE_PATHS}
STATUS_PATH = "/v1/collector/status"
SOURCE_CONFIG_PATH = "/sourceConfig"
ALLOWED_HEADERS = "AnonymousId, Authorization, Content-Type, Content-Encoding, X-Retry-Count"
_UNKNOWN_KEY_TTL_S = 2.0


class CommitFailed(MeCdpError):
    """The raw log could not commit: nothing was stored, the client should retry."""

    status_code = 503
    code = "commit_failed"


class _ClientGone(Exception):
    pass


@dataclass(frozen=True, slots=True)
class KnownSource:
    source_id: str
    name: str
    kind: str
    write_key: str


class WriteKeys:
    """Write key -> source, cached in memory (sources are few; new ones are found on a miss)."""

    def __init__(self, state: AppState) -> None:
        self._state = state
        self._known: dict[str, KnownSource] = {}
        self._unknown: dict[str, float] = {}

    def find(self, write_key: str) -> KnownSource | None:
        found = self._known.get(write_key)
        if found is not None:
            return found
        missed = self._unknown.get(write_key)
        if missed is not None and time.monotonic() - missed < _UNKNOWN_KEY_TTL_S:
            return None
        row = (
            self._state.store.cursor()
            .execute("SELECT source_id, name, kind FROM sources WHERE write_key = ?", [write_key])
            .fetchone()
        )
        if row is None:
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[write_key] = time.monotonic()
            return None
        found = KnownSource(str(row[0]), str(row[1]), str(row[2]), write_key)
        self._known[write_key] = found
        return found

    def require(self, write_key: str | None) -> KnownSource:
        if not write_key:
            raise AuthenticationError(
                "a write key is required: Basic auth with the write key as user name, "
                "?writeKey=, or writeKey in the body",
                field="writeKey",
            )
        found = self.find(write_key)
        if found is None:
            raise AuthenticationError("unknown write key", field="writeKey")
        if found.kind != "events":
            raise PermissionDenied(
                f"source {found.source_id!r} collects {found.kind} files, not events; "
                "register a source of kind 'events' for tracking",
                field="writeKey",
            )
        return found


def _basic_user(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


def _cors_headers(origin: bytes | None) -> list[tuple[bytes, bytes]]:
    if origin:
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
    return [(b"access-control-allow-origin", b"*")]


class _Request:
    """The parts of an ASGI HTTP scope the collector reads."""

    __slots__ = ("headers", "method", "path", "query", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        path: str = scope["path"]
        self.path = path.rstrip("/") or "/"
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        raw_query: bytes = scope.get("query_string", b"")
        self.query = parse_qs(raw_query.decode("latin-1")) if raw_query else {}

    def header(self, name: bytes) -> str:
        return self.headers.get(name, b"").decode("latin-1")

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class Collector:
    """The collector's routes and the writer they wait on."""

    def __init__(self, state: AppState, writer: RawLogWriter) -> None:
        self.state = state
        self.writer = writer
        self.keys = WriteKeys(state)
        self.processor: StreamProcessor | None = None
        settings = state.settings
        self.max_body = settings.max_batch_bytes
        self.max_event = settings.max_event_bytes
        self.vault = vault_for(settings)

    # ASGI ----------------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        path = path.rstrip("/")
        return (
            path in COLLECT_PATHS
            or path in (STATUS_PATH, SOURCE_CONFIG_PATH)
            or (path.startswith("/v1/projects/") and path.endswith("/settings"))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = _Request(scope)
        origin = req.headers.get(b"origin")
        if req.method == "OPTIONS":
            await self._preflight(send, origin)
            return
        try:
            if req.path in COLLECT_PATHS:
                if req.method != "POST":
                    raise _method_not_allowed(req.method, "POST")
                status, body = await self._collect(req, receive, COLLECT_PATHS[req.path])
            else:
                if req.method not in ("GET", "HEAD"):
                    raise _method_not_allowed(req.method, "GET")
                status, body = await self._get(req)
        except _ClientGone:
            return
        except MeCdpError as exc:
            status, body = exc.status_code, orjson.dumps(exc.to_dict())
        await _respond(send, status, body, origin)

    async def _preflight(self, send: Send, origin: bytes | None) -> None:
        headers = [
            *_cors_headers(origin),
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", b"86400"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    # collecting ----------------------------------------------------------------------------

    async def _collect(
        self, req: _Request, receive: Receive, implied_type: str | None
    ) -> tuple[int, bytes]:
        arrival = self.writer.arrival()
        try:
            return await self._collect_arriving(req, receive, implied_type, arrival)
        finally:
            arrival.end()

    async def _collect_arriving(
        self, req: _Request, receive: Receive, implied_type: str | None, arrival: Arrival
    ) -> tuple[int, bytes]:
        check_content_type(req.header(b"content-type"))
        length = req.header(b"content-length")
        if length.isdigit() and int(length) > self.max_body:
            raise body_too_large(int(length), self.max_body)
        write_key = _basic_user(req.header(b"authorization")) or req.query_value("writeKey")
        source = self.keys.require(write_key) if write_key else None
        raw = await _read_body(receive, self.max_body)
        received_at = utc_now()
        body = decode_body(raw, req.header(b"content-encoding"), self.max_body)
        try:
            parsed = parse_json(body)
        except InputError as exc:
            if source is not None:
                await self._quarantine_body(arrival, source, body, exc)
            raise
        if source is None:
            body_key = parsed.get("writeKey") if isinstance(parsed, dict) else None
            source = self.keys.require(body_key if isinstance(body_key, str) else None)
        try:
            messages, sent_at = messages_of(parsed, implied_type)
        except InputError as exc:
            await self._quarantine_body(arrival, source, body, exc)
            raise
        anonymous_id = _anonymous_id_header(req.header(b"anonymousid"))
        accepted: list[AcceptedMessage] = []
        rejected: list[RejectedMessage] = []
        for index, message in enumerate(messages):
            outcome = validate_message(
                message,
                index,
                received_at=received_at,
                batch_sent_at=sent_at,
                implied_type=implied_type,
                header_anonymous_id=anonymous_id,
                max_event_bytes=self.max_event,
                vault=self.vault,
            )
            if isinstance(outcome, AcceptedMessage):
                accepted.append(outcome)
            else:
                rejected.append(outcome)
        if not messages:
            return 200, orjson.dumps(
                {"success": True, "accepted": 0, "duplicates": 0, "rejected": []}
            )
        request = WriteRequest(
            source_id=source.source_id,
            received_at=received_at,
            messages=accepted,
            quarantined=[
                QuarantineEntry(
                    source.source_id, r.message_id, r.field, r.value, r.rule, r.reason, r.payload
                )
                for r in rejected
            ],
            received=len(messages),
        )
        try:
            result = await arrival.write(request)
        except Exception as exc:
            raise CommitFailed(f"the raw log could not commit ({exc}); retry") from exc
        listed = [r.public() for r in rejected]
        if rejected and (implied_type is not None or not accepted):
            first = rejected[0]
            error = InputError(
                first.reason
                if implied_type
                else f"every message of the batch was rejected; first: message {first.index}: "
                f"{first.reason}",
                field=first.field if implied_type else f"batch[{first.index}].{first.field}",
                value=first.value,
                rule=first.rule,
                rejected=None if implied_type else listed,
            )
            if first.rule.startswith("limit."):
                error = _as_limit(error, self.max_event)
            return error.status_code, orjson.dumps(error.to_dict())
        return 200, orjson.dumps(
            {
                "success": True,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": listed,
            }
        )

    async def _quarantine_body(
        self, arrival: Arrival, source: KnownSource, body: bytes, exc: InputError
    ) -> None:
        entry = QuarantineEntry(
            source_id=source.source_id,
            ref=None,
            field=exc.field,
            value=None,
            rule=exc.rule or exc.code,
            reason=exc.message,
            payload=body.decode("utf-8", errors="replace"),
        )
        request = WriteRequest(source.source_id, utc_now(), [], [entry], received=1)
        try:
            await arrival.write(request)
        except Exception as err:
            raise CommitFailed(f"the raw log could not commit ({err}); retry") from err

    # reading -------------------------------------------------------------------------------

    async def _get(self, req: _Request) -> tuple[int, bytes]:
        if req.path == STATUS_PATH:
            wait_ms = req.query_value("wait_ms")
            if wait_ms and wait_ms.isdigit() and self.processor is not None:
                await asyncio.to_thread(self.processor.drain, min(int(wait_ms), 60_000) / 1000)
            return 200, orjson.dumps(self.status())
        if req.path == SOURCE_CONFIG_PATH:
            key = _basic_user(req.header(b"authorization")) or req.query_value("writeKey")
            source = self.keys.require(key)
            return 200, orjson.dumps(
                {
                    "isHosted": False,
                    "source": {
                        "id": source.source_id,
                        "name": source.name,
                        "writeKey": source.write_key,
                        "enabled": True,
                        "config": {},
                        "destinations": [],
                    },
                }
            )
        key = req.path.removeprefix("/v1/projects/").removesuffix("/settings")
        source = self.keys.require(key)
        host = req.header(b"host") or f"{self.state.settings.host}:{self.state.settings.port}"
        return 200, orjson.dumps(
            {
                "integrations": {
                    "Segment.io": {
                        "apiKey": source.write_key,
                        "apiHost": f"{host}/v1",
                        "unbundledIntegrations": [],
                        "addBundledMetadata": True,
                        "maybeBundledConfigIds": {},
                    }
                },
                "plan": {
                    "track": {"__default": {"enabled": True, "integrations": {}}},
                    "identify": {"__default": {"enabled": True}},
                    "group": {"__default": {"enabled": True}},
                },
                "edgeFunction": {},
                "analyticsNextEnabled": True,
                "middlewareSettings": {},
                "enabledMiddleware": {},
                "metrics": {"sampleRate": 0},
                "remotePlugins": [],
            }
        )

    def status(self) -> dict[str, Any]:
        """Progress counters only: never personal data."""
        writer = self.writer
        out: dict[str, Any] = {
            "writer": {
                "last_seq": writer.last_seq,
                "commits": writer.commits,
                "messages_written": writer.messages_written,
                "queued_requests": writer.queued,
                "last_commit_ms": round(writer.last_commit_ms, 3),
                "requests_committed": writer.requests_committed,
                "commit_seconds": round(writer.commit_seconds, 3),
            }
        }
        if self.processor is not None:
            out["processor"] = self.processor.status()
        return out


def _as_limit(error: InputError, limit: int) -> InputError:
    from mecdp.errors import LimitExceeded

    details = {k: v for k, v in error.details.items() if k not in ("field", "value", "rule")}
    return LimitExceeded(
        error.message,
        field=error.field,
        value=error.details.get("value"),
        rule=error.rule,
        limit=limit,
        **details,
    )


def _method_not_allowed(method: str, allowed: str) -> MeCdpError:
    error = MeCdpError(f"method {method} is not allowed here; use {allowed}", allowed=allowed)
    error.status_code = 405
    error.code = "method_not_allowed"
    return error


def _anonymous_id_header(value: str) -> str | None:
    """RudderStack's `AnonymousId` header: base64 of the anonymous id."""
    if not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InputError(
            "the AnonymousId header must be the base64 of the anonymous id",
            field="AnonymousId",
            rule="header.base64",
        ) from exc
    return decoded or None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise body_too_large(size, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, origin: bytes | None) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_cors_headers(origin),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CollectorMiddleware:
    """Serves the collector paths; passes everything else on to the FastAPI app."""

    def __init__(self, app: ASGIApp, collector: Collector) -> None:
        self.app = app
        self.collector = collector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.collector.handles(scope["path"]):
            await self.collector(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_collector(app: FastAPI, state: AppState) -> None:
    """Register the collector routes and its workers (raw-log writer, stream processor)."""
    writer = RawLogWriter(
        state.store,
        vault=vault_for(state.settings),
        gather_ms=state.settings.commit_interval_ms,
    )
    collector = Collector(state, writer)
    state.workers.append(writer)
    if state.settings.stream_processor:
        processor = StreamProcessor(state.store, state.settings)
        writer.listeners.append(processor.notify)
        collector.processor = processor
        state.workers.append(processor)
    app.add_middleware(CollectorMiddleware, collector=collector)
    app.state.collector = collector

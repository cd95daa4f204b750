"""Segment / RudderStack tracking messages: decode a request body, validate each message,
correct the client's clock skew.

The rules (what a message must look like) live here; the HTTP layer (`collect/api.py`) only
moves bytes and the writer (`collect/writer.py`) only stores what this module accepted.

What is stored as a message's payload: the message as received (re-serialised compactly
with orjson, keys and values unchanged), except that

* `writeKey` is removed (a credential has no place in the log),
* `type` is added when the endpoint implied it (`/v1/track` with a body without `type`),
* `anonymousId` is added when it came from RudderStack's `AnonymousId` header,
* personal values (name, phone, email, id-card under `traits`, `context.traits`, and
  `context.externalIds` of those types; `mecdp.privacy.vault.PERSONAL_KEYS`) are replaced
  by AES-GCM tokens (`e1:<key id>:...`), which the stream processor decrypts.

A message without `messageId` gets a server-generated UUID4 (stored in
`raw_events.message_id`, not in the payload). Such a message cannot be deduplicated when the
client retries it: a deterministic id is impossible, since two identical events may both be real.
"""

from __future__ import annotations

import gzip
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from mecdp.errors import InputError, LimitExceeded, UnsupportedMediaType
from mecdp.privacy.vault import Vault, protect_message

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")
_STRING_FIELDS = ("event", "name", "category", "previousId", "groupId")
MAX_MESSAGE_ID = 255


@dataclass(slots=True)
class AcceptedMessage:
    """A valid message, ready for the raw log."""

    index: int
    message_id: str
    event_time: datetime
    payload: str


@dataclass(slots=True)
class RejectedMessage:
    """A message that broke a rule: goes to quarantine, and its index back to the client."""

    index: int
    field: str
    value: str | None
    rule: str
    reason: str
    message_id: str | None
    payload: str

    def public(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "rule": self.rule, "reason": self.reason}


def utc_now() -> datetime:
    """Now as a naive UTC datetime (how every TIMESTAMP column stores time)."""
    return datetime.now(UTC).replace(tzinfo=None)


def check_content_type(content_type: str) -> None:
    """Accept JSON sent as `application/json` or `text/plain` (browser SDKs); empty = JSON."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"content type {media!r} is not accepted; send one of: "
            f"{', '.join(ACCEPTED_CONTENT_TYPES)} (a JSON body)",
            field="content-type",
            value=media,
            rule="content_type",
            accepted=list(ACCEPTED_CONTENT_TYPES),
        )


def decode_body(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """Undo `Content-Encoding: gzip`; the decoded body is held to the same limit."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"content encoding {encoding!r} is not accepted; send gzip or no encoding",
            field="content-encoding",
            value=encoding,
            rule="content_encoding",
            accepted=["gzip", "identity"],
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InputError(
            f"the body is not valid gzip: {exc}", field="body", rule="gzip.format"
        ) from exc
    if len(out) > max_bytes:
        raise body_too_large(len(out), max_bytes, decoded=True)
    if not inflater.eof:
        # gzip.decompress gives a better message for a truncated stream
        try:
            gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise InputError(
                f"the body is not valid gzip: {exc}", field="body", rule="gzip.format"
            ) from exc
    return out


def body_too_large(size: int, limit: int, *, decoded: bool = False) -> LimitExceeded:
    what = "decompressed request body" if decoded else "request body"
    return LimitExceeded(
        f"the {what} is {size} bytes, over the limit of {limit} bytes ({limit // 1024} KB) "
        "per request; send fewer events per batch",
        field="body",
        value=size,
        rule="limit.request_bytes",
        limit=limit,
    )


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; a syntax error names the position."""
    if not body.strip():
        raise InputError(
            "the request body is empty; send a JSON object", field="body", rule="json.empty"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno} (char {exc.pos}): {exc.msg}",
            field="body",
            rule="json.syntax",
            position=exc.pos,
            line=exc.lineno,
            column=exc.colno,
        ) from exc


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 date-time string as naive UTC; no offset means UTC. None if not one."""
    if type(value) is not str or not value:
        return None
    try:
        if value[-1] == "Z" and "T" in value:  # the SDKs' usual form: naive UTC directly
            parsed = datetime.fromisoformat(value[:-1])
            return parsed if parsed.tzinfo is None else None
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    offset = parsed.utcoffset()
    if offset is None:
        return parsed
    return parsed.replace(tzinfo=None) - offset


def _event_time(
    explicit: datetime | None,
    original: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
) -> datetime:
    """When the event happened, in server time.

    An explicit `timestamp` wins (as Segment and RudderStack do). Else the client's clock is
    corrected: `receivedAt - (sentAt - originalTimestamp)`, with the batch's `sentAt` when the
    message has none. Without `originalTimestamp` the event happened when it was received.
    """
    if explicit is not None:
        return explicit
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 200 else text[:197] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Invalid(Exception):
    def __init__(self, field: str, value: Any, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.value = None if value is None else _short(value)
        self.rule = rule
        self.reason = reason


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _is_id(value: Any) -> bool:
    t = type(value)
    return t is str or t is int


_TYPE_SET = frozenset(MESSAGE_TYPES)


def _check_message(
    message: dict[str, Any],
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """Raise `_Invalid` naming the first broken rule; else the parsed time fields
    (timestamp, originalTimestamp, sentAt)."""
    get = message.get
    kind = get("type")
    if kind not in _TYPE_SET:
        if not _present(kind):
            raise _Invalid(
                "type",
                kind,
                "type.required",
                f"type is required: one of {', '.join(MESSAGE_TYPES)}",
            )
        raise _Invalid(
            "type",
            kind,
            "type.enum",
            f"type {_short(kind)!r} is not one of {', '.join(MESSAGE_TYPES)}",
        )
    user_id, anonymous_id = get("userId"), get("anonymousId")
    if user_id is None or user_id == "":
        if anonymous_id is None or anonymous_id == "":
            raise _Invalid(
                "userId",
                None,
                "identity.required",
                "userId or anonymousId is required (both are missing or empty)",
            )
    elif not _is_id(user_id):
        raise _Invalid(
            "userId", user_id, "id.type", f"userId must be a string (got {_json_type(user_id)})"
        )
    if anonymous_id is not None and anonymous_id != "" and not _is_id(anonymous_id):
        raise _Invalid(
            "anonymousId",
            anonymous_id,
            "id.type",
            f"anonymousId must be a string (got {_json_type(anonymous_id)})",
        )
    message_id = get("messageId")
    if message_id is not None:
        if not _is_id(message_id):
            raise _Invalid(
                "messageId",
                message_id,
                "messageId.type",
                f"messageId must be a string (got {_json_type(message_id)})",
            )
        if not 0 < len(str(message_id)) <= MAX_MESSAGE_ID:
            raise _Invalid(
                "messageId",
                message_id,
                "messageId.length",
                f"messageId must be 1-{MAX_MESSAGE_ID} characters",
            )
    for name in _OBJECT_FIELDS:
        value = get(name)
        if value is not None and type(value) is not dict:
            raise _Invalid(
                name,
                value,
                "field.object",
                f"{name} must be a JSON object (got {_json_type(value)})",
            )
    context = get("context")
    if context is not None:
        traits = context.get("traits")
        if traits is not None and type(traits) is not dict:
            raise _Invalid(
                "context.traits",
                traits,
                "field.object",
                f"context.traits must be a JSON object (got {_json_type(traits)})",
            )
    times: list[datetime | None] = []
    for name in _TIME_FIELDS:
        value = get(name)
        if value is None:
            times.append(None)
            continue
        parsed = parse_time(value)
        if parsed is None:
            raise _Invalid(
                name,
                value,
                "timestamp.format",
                f"{name} must be an ISO-8601 date-time string, "
                f"e.g. 2024-03-05T08:30:00.000Z (got {_short(value)!r})",
            )
        times.append(parsed)
    for name in _STRING_FIELDS:
        value = get(name)
        if value is not None and type(value) is not str:
            raise _Invalid(
                name, value, "field.string", f"{name} must be a string (got {_json_type(value)})"
            )
    if kind == "track":
        if not _present(get("event")):
            raise _Invalid(
                "event", get("event"), "track.event_required", "a track message needs an event name"
            )
    elif kind == "alias":
        if not _present(get("previousId")):
            raise _Invalid(
                "previousId",
                get("previousId"),
                "alias.previous_id_required",
                "an alias message needs previousId",
            )
    elif kind == "group" and not _present(get("groupId")):
        raise _Invalid(
            "groupId", get("groupId"), "group.group_id_required", "a group message needs groupId"
        )
    return times[0], times[1], times[2]


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # pragma: no cover - orjson.loads output always serialises
        return repr(value)


def validate_message(
    message: Any,
    index: int,
    *,
    received_at: datetime,
    batch_sent_at: datetime | None,
    implied_type: str | None = None,
    header_anonymous_id: str | None = None,
    max_event_bytes: int,
    vault: Vault | None = None,
) -> AcceptedMessage | RejectedMessage:
    """Check one message and compute its event time and stored payload.

    With a `vault`, personal trait values are replaced by tokens first
    (`mecdp.privacy.vault.protect_message`): the raw log never holds them plain.
    """
    if not isinstance(message, dict):
        return RejectedMessage(
            index,
            "message",
            _short(message),
            "message.object",
            f"a message must be a JSON object (got {_json_type(message)})",
            None,
            _dump(message),
        )
    extra: dict[str, Any] = {}
    if implied_type is not None and "type" not in message:
        extra["type"] = implied_type
    if header_anonymous_id and not _present(message.get("anonymousId")):
        extra["anonymousId"] = header_anonymous_id
    if extra or "writeKey" in message:
        message = {k: v for k, v in message.items() if k != "writeKey"}
        message.update(extra)
    if vault is not None and ("traits" in message or "context" in message):
        protect_message(message, vault)
    encoded = orjson.dumps(message)
    payload = encoded.decode()
    raw_id = message.get("messageId")
    message_id = str(raw_id) if _is_id(raw_id) and raw_id != "" else None
    if len(encoded) > max_event_bytes:
        size = len(encoded)
        return RejectedMessage(
            index,
            "event",
            str(size),
            "limit.event_bytes",
            f"the event is {size} bytes, over the limit of {max_event_bytes} bytes "
            f"({max_event_bytes // 1024} KB) per event",
            message_id,
            payload,
        )
    if implied_type is not None and message.get("type") != implied_type:
        return RejectedMessage(
            index,
            "type",
            _short(message.get("type")),
            "type.endpoint",
            f"type {_short(message.get('type'))!r} does not match the endpoint "
            f"(/{implied_type}); post it to /v1/batch or fix the type",
            message_id,
            payload,
        )
    try:
        explicit, original, sent_at = _check_message(message)
    except _Invalid as bad:
        return RejectedMessage(
            index, bad.field, bad.value, bad.rule, bad.reason, message_id, payload
        )
    return AcceptedMessage(
        index=index,
        message_id=message_id or str(uuid.uuid4()),
        event_time=_event_time(explicit, original, sent_at or batch_sent_at, received_at),
        payload=payload,
    )


def messages_of(body: Any, implied_type: str | None) -> tuple[list[Any], datetime | None]:
    """The messages of a request and the batch's `sentAt` (single-event bodies: itself)."""
    if implied_type is not None:
        return [body], None
    if not isinstance(body, dict):
        raise InputError(
            f"a batch must be a JSON object with a 'batch' array (got {_json_type(body)})",
            field="body",
            rule="batch.object",
        )
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise InputError(
            f"batch must be an array of messages (got {_json_type(batch)})",
            field="batch",
            value=None if batch is None else _short(batch),
            rule="batch.array",
        )
    sent_at = body.get("sentAt")
    parsed = parse_time(sent_at)
    if sent_at is not None and parsed is None:
        raise InputError(
            f"sentAt must be an ISO-8601 date-time string (got {_short(sent_at)!r})",
            field="sentAt",
            value=_short(sent_at),
            rule="timestamp.format",
        )
    return batch, parsed

"""The official Python SDKs, unchanged, against the running collector.

Both SDKs stamp every message with an explicit `timestamp` (the caller's or now), post
`{"batch", "sentAt"}` to `/v1/batch` with Basic auth (write key as user name); RudderStack
gzips by default. An explicit timestamp is kept as the event time (skew correction applies to
`originalTimestamp` without `timestamp`, see test_http_collector.test_skew_correction).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from collect.collector_server import RunningServer

PAST = datetime(2024, 3, 5, 8, 30, tzinfo=UTC)


def _send(c: Any, prefix: str) -> dict[str, datetime | None]:
    ids = {f"{prefix}-{n}": None for n in ("identify", "track", "page", "alias", "past")}
    c.identify("m-1", {"name": "李雷", "phone": "13800138000"}, message_id=f"{prefix}-identify")
    c.track("m-1", "Appointment Booked", {"store": "SH01"}, message_id=f"{prefix}-track")
    c.page("m-1", "booking", "Booking", message_id=f"{prefix}-page")
    c.alias("anon-1", "m-1", message_id=f"{prefix}-alias")
    c.track("m-1", "Old", timestamp=PAST, message_id=f"{prefix}-past")
    ids[f"{prefix}-past"] = PAST.replace(tzinfo=None)
    return ids


def test_segment_and_rudderstack_sdks_deliver_exactly_once(server: RunningServer) -> None:
    import rudderstack.analytics as rudder_analytics
    import segment.analytics as analytics

    errors: list[object] = []
    key = server.write_keys["web_site"]
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)

    analytics.write_key = key
    analytics.host = server.url
    analytics.on_error = lambda e, _batch: errors.append(e)
    seg_ids = _send(analytics, "seg-" + uuid.uuid4().hex[:6])
    analytics.flush()

    rudder_analytics.write_key = key
    rudder_analytics.dataPlaneUrl = server.url
    rudder_analytics.on_error = lambda e, _batch: errors.append(e)
    rud_ids = _send(rudder_analytics, "rud-" + uuid.uuid4().hex[:6])
    rudder_analytics.flush()
    # the SDKs' consumers retry in background threads; a replay must not duplicate
    analytics.flush()
    rudder_analytics.flush()
    after = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    assert not errors, errors
    assert server.status(wait_ms=10_000)["processor"]["lag"] == 0
    server.stop()

    rows = server.query("SELECT message_id, count(*), min(event_time) FROM raw_events GROUP BY 1")
    stored = {m: (c, t) for m, c, t in rows}
    expected = {**seg_ids, **rud_ids}
    assert set(stored) == set(expected)
    for mid, explicit in expected.items():
        count, event_time = stored[mid]
        assert count == 1
        if explicit is not None:
            assert event_time == explicit
        else:
            assert before <= event_time <= after
    events = server.query("SELECT message_id, type FROM events")
    assert {m for m, _ in events} == set(expected)
    assert {t for _, t in events} == {"identify", "track", "page", "alias"}

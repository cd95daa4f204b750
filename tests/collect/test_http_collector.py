"""The collector over real HTTP: formats, auth, limits, bad input, dedupe, CORS, settings."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime

import duckdb
import httpx
import orjson
from collect.collector_server import RunningServer

from mecdp.config import Settings
from mecdp.privacy.vault import read_quarantine, vault_for


def _auth(key: str) -> tuple[str, str]:
    return (key, "")


def _event(mid: str, **extra: object) -> dict[str, object]:
    return {"type": "track", "event": "Viewed Item", "userId": "u1", "messageId": mid, **extra}


def test_batch_single_short_paths_gzip_text_plain_and_dedupe(server: RunningServer) -> None:
    key = server.write_keys["web_site"]
    url = server.url
    r = httpx.post(f"{url}/v1/batch", json={"batch": [_event("b1"), _event("b2")]}, auth=_auth(key))
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "accepted": 2, "duplicates": 0, "rejected": []}
    # browser SDK: JSON as text/plain with the write key in the body, short path
    r = httpx.post(
        f"{url}/v1/t",
        content=json.dumps({**_event("t1"), "writeKey": key}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert r.status_code == 200, r.text
    # ?writeKey= and gzip
    body = gzip.compress(
        orjson.dumps({"userId": "u2", "traits": {"city": "上海"}, "messageId": "i1"})
    )
    r = httpx.post(
        f"{url}/v1/identify",
        params={"writeKey": key},
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    # RudderStack beacon, anonymous id from the AnonymousId header
    anon = base64.b64encode(b"anon-42").decode()
    r = httpx.post(
        f"{url}/beacon/v1/batch",
        params={"writeKey": key},
        content=json.dumps({"batch": [{"type": "page", "name": "Home", "messageId": "p1"}]}),
        headers={"Content-Type": "text/plain", "AnonymousId": anon},
    )
    assert r.status_code == 200, r.text
    # replay: acknowledged, stored once, counted as duplicates
    r = httpx.post(
        f"{url}/v1/batch",
        json={"batch": [_event("b1"), _event("b2"), _event("b3")]},
        auth=_auth(key),
    )
    assert r.json() == {"success": True, "accepted": 1, "duplicates": 2, "rejected": []}
    server.stop()
    rows = dict(server.query("SELECT message_id, payload FROM raw_events"))
    assert sorted(rows) == ["b1", "b2", "b3", "i1", "p1", "t1"]
    assert "writeKey" not in rows["t1"]
    assert json.loads(rows["t1"])["type"] == "track"
    assert json.loads(rows["p1"])["anonymousId"] == "anon-42"
    assert json.loads(rows["i1"])["traits"] == {"city": "上海"}
    dup = server.query(
        "SELECT sum(received), sum(accepted), sum(duplicates) FROM ingest_log WHERE origin = 'http'"
    )
    assert dup == [(8, 6, 2)]


def test_skew_correction(server: RunningServer) -> None:
    key = server.write_keys["web_site"]
    # the client clock is 1 hour ahead: originalTimestamp and sentAt are both +1 h
    msgs = [
        {
            "type": "track",
            "event": "a",
            "anonymousId": "x",
            "messageId": "skewed",
            "originalTimestamp": "2030-01-01T01:00:00.000Z",
        },
        {
            "type": "track",
            "event": "b",
            "anonymousId": "x",
            "messageId": "explicit",
            "timestamp": "2024-03-05T16:30:00+08:00",
            "originalTimestamp": "2030-01-01T01:00:00.000Z",
        },
    ]
    before = datetime.utcnow()  # noqa: DTZ003 - naive UTC like the store
    r = httpx.post(
        f"{server.url}/v1/batch",
        auth=_auth(key),
        json={"batch": msgs, "sentAt": "2030-01-01T01:00:05.000Z"},
    )
    after = datetime.utcnow()  # noqa: DTZ003
    assert r.status_code == 200, r.text
    server.stop()
    rows = dict(server.query("SELECT message_id, event_time FROM raw_events"))
    # receivedAt - (sentAt - originalTimestamp) = receivedAt - 5 s
    skew = (rows["skewed"] - before).total_seconds()
    assert -5.5 <= skew <= -5 + (after - before).total_seconds() + 0.5
    assert rows["explicit"] == datetime(2024, 3, 5, 8, 30)


def test_bad_input_answers_name_the_field_and_rule(server: RunningServer) -> None:
    key = server.write_keys["web_site"]
    url = f"{server.url}/v1/track"
    r = httpx.post(url, content=b'{"userId": "u", "event": ', auth=_auth(key))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["rule"] == "json.syntax" and err["position"] == 25 and "column" in err["message"]
    r = httpx.post(
        url, content=b"<x/>", auth=_auth(key), headers={"Content-Type": "application/xml"}
    )
    assert r.status_code == 415
    assert "application/json" in r.json()["error"]["message"]
    assert httpx.post(url, json=_event("k"), auth=_auth("wk_nope")).status_code == 401
    assert httpx.post(url, json=_event("k")).status_code == 401
    r = httpx.post(url, json=_event("k"), auth=_auth(server.write_keys["pos_files"]))
    assert r.status_code == 403
    r = httpx.post(
        f"{server.url}/v1/batch",
        auth=_auth(key),
        content=b'{"batch": [' + b'"x",' * 200_000 + b'"x"]}',
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert r.json()["error"]["limit"] == 500 * 1024
    big = _event("big", properties={"blob": "x" * 40_000})
    r = httpx.post(url, json=big, auth=_auth(key))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert r.json()["error"]["limit"] == 32 * 1024
    cases = [
        ({"event": "e", "messageId": "m"}, "userId", "identity.required"),
        ({"userId": "u", "event": "e", "properties": [1]}, "properties", "field.object"),
        ({"userId": "u", "event": "e", "timestamp": "yesterday"}, "timestamp", "timestamp.format"),
        ({"userId": "u"}, "event", "track.event_required"),
    ]
    for body, field, rule in cases:
        r = httpx.post(url, json=body, auth=_auth(key))
        assert r.status_code == 400, body
        err = r.json()["error"]
        assert (err["field"], err["rule"]) == (field, rule)
        assert field in err["message"] or field == "userId"
    r = httpx.post(
        f"{server.url}/v1/batch",
        auth=_auth(key),
        json={"batch": [{"userId": "u", "event": "no type", "messageId": "nt"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"]["rejected"][0]["rule"] == "type.required"
    server.stop()
    rows = server.query("SELECT origin, field, rule, payload FROM quarantine ORDER BY 1, 2")
    rules = {r[2] for r in rows}
    assert {
        "json.syntax",
        "identity.required",
        "field.object",
        "timestamp.format",
        "track.event_required",
        "limit.event_bytes",
        "type.required",
    } <= rules
    assert all(r[0] == "http" and r[3] for r in rows)
    assert server.query("SELECT count(*) FROM raw_events") == [(0,)]


def test_batch_keeps_good_events_and_lists_rejected(server: RunningServer) -> None:
    key = server.write_keys["mini_app"]
    batch = [
        _event("g1"),
        {"type": "track", "event": "x", "messageId": "bad1"},
        _event("g2"),
        {"type": "identify", "userId": "u", "traits": "vip", "messageId": "bad2"},
    ]
    r = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=_auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2
    assert [(x["index"], x["field"], x["rule"]) for x in body["rejected"]] == [
        (1, "userId", "identity.required"),
        (3, "traits", "field.object"),
    ]
    server.stop()
    assert sorted(server.query("SELECT message_id FROM raw_events")) == [("g1",), ("g2",)]
    settings = Settings(workspace=server.workspace)
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        q = [
            (r["ref"], r["field"], r["value"], r["rule"], r["payload"])
            for r in sorted(read_quarantine(con, vault_for(settings)), key=lambda r: r["ref"])
        ]
    finally:
        con.close()
    assert [(r[0], r[1], r[2], r[3]) for r in q] == [
        ("bad1", "userId", None, "identity.required"),
        ("bad2", "traits", "vip", "field.object"),
    ]
    assert json.loads(str(q[1][4]))["traits"] == "vip"
    assert server.query("SELECT received, accepted, quarantined, duplicates FROM ingest_log") == [
        (4, 2, 2, 0)
    ]


def test_cors_and_settings_endpoints(server: RunningServer) -> None:
    key = server.write_keys["web_site"]
    r = httpx.options(
        f"{server.url}/v1/t",
        headers={
            "Origin": "https://clinic.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,anonymousid",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://clinic.example.com"
    allowed = r.headers["access-control-allow-headers"].lower()
    assert {"anonymousid", "authorization", "content-type"} <= {
        h.strip() for h in allowed.split(",")
    }
    r = httpx.post(
        f"{server.url}/v1/t",
        json=_event("c1"),
        auth=_auth(key),
        headers={"Origin": "https://clinic.example.com"},
    )
    assert r.headers["access-control-allow-origin"] == "https://clinic.example.com"
    r = httpx.get(f"{server.url}/v1/projects/{key}/settings")
    assert r.status_code == 200
    seg = r.json()["integrations"]["Segment.io"]
    assert seg["apiKey"] == key and seg["apiHost"] == f"127.0.0.1:{server.port}/v1"
    assert httpx.get(f"{server.url}/v1/projects/wk_nope/settings").status_code == 401
    for kwargs in ({"auth": _auth(key)}, {"params": {"writeKey": key}}):
        r = httpx.get(f"{server.url}/sourceConfig/", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200
        src = r.json()["source"]
        assert (src["id"], src["writeKey"], src["enabled"]) == ("web_site", key, True)
        assert r.json()["isHosted"] is False and src["destinations"] == []
    status = server.status()
    assert set(status) == {"writer", "processor"}
    assert "u1" not in json.dumps(status)

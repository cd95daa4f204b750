"""The stream processor: events, contacts and identifiers appear shortly after the ack."""

from __future__ import annotations

import time

import duckdb
import httpx
from collect.collector_server import RunningServer

from mecdp.config import Settings
from mecdp.privacy.vault import plain_contacts, plain_identifiers, read_quarantine, vault_for


def test_events_people_and_identifiers_follow_the_raw_log(server: RunningServer) -> None:
    key = server.write_keys["mini_app"]
    batch = [
        {
            "type": "identify",
            "userId": "m-001",
            "anonymousId": "dev-1",
            "messageId": "id1",
            "traits": {
                "name": "王 小美",
                "phone": "138-0013-8000",
                "gender": "女",
                "birthday": "1992/5/6",
                "address": {"city": "杭州"},
                "wechatUnionId": "oU1",
            },
        },
        {
            "type": "track",
            "event": "Coupon Claimed",
            "anonymousId": "dev-2",
            "messageId": "tr1",
            "properties": {"coupon": "SPRING"},
            "context": {
                "os": {"name": "Android"},
                "device": {"advertisingId": "oaid-9"},
                "externalIds": [{"id": "open-1", "type": "douyin_open_id"}],
            },
        },
        {
            "type": "track",
            "event": "Form",
            "anonymousId": "dev-3",
            "messageId": "bad",
            "context": {"traits": {"phone": "12345"}},
        },
        {"type": "alias", "userId": "m-001", "previousId": "dev-2", "messageId": "al1"},
    ]
    sent = time.monotonic()
    r = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(key, ""))
    assert r.status_code == 200, r.text
    status = server.status(wait_ms=10_000)["processor"]
    caught_up = time.monotonic() - sent
    assert status["lag"] == 0 and status["checkpoint"] >= 4
    assert caught_up < 10
    server.stop()
    events = server.query(
        "SELECT message_id, type, event, user_id, anonymous_id, previous_id, "
        "channel, properties FROM events ORDER BY seq"
    )
    assert [e[:3] for e in events] == [
        ("id1", "identify", None),
        ("tr1", "track", "Coupon Claimed"),
        ("bad", "track", "Form"),
        ("al1", "alias", None),
    ]
    assert events[3][5] == "dev-2" and events[1][6] == "wechat_mp"
    assert '"SPRING"' in events[1][7]
    settings = Settings(workspace=server.workspace)
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        people = plain_contacts(con, settings).sort_by("record_id").to_pylist()
        idents = plain_identifiers(con, settings).to_pylist()
        quarantined = read_quarantine(con, vault_for(settings))
    finally:
        con.close()
    contacts = [
        (c["record_id"], c["name"], c["gender"], c["birthday"] and str(c["birthday"]), c["city"])
        for c in people
    ]
    # the identify's traits; the track carries identifiers only; 'bad' is quarantined
    assert contacts == [
        ("mini_app:id1", "王小美", "F", "1992-05-06", "杭州"),
        ("mini_app:tr1", None, None, None, None),
    ]
    # at rest: name encrypted, phone a blind index
    assert str(server.query("SELECT name FROM contacts WHERE name IS NOT NULL")[0][0]).startswith(
        "e1:"
    )
    phone = [i for i in idents if i["id_type"] == "phone"][0]
    assert phone["id_value"] == vault_for(settings).bidx("phone", "+8613800138000")
    assert quarantined[0]["value"] == "12345" and "12345" not in str(
        server.query("SELECT value, payload, reason FROM quarantine")
    )
    ids = {(i["record_id"], i["id_type"], i["value"]) for i in idents}
    assert {
        ("mini_app:id1", "phone", "+8613800138000"),
        ("mini_app:id1", "wechat_unionid", "oU1"),
        ("mini_app:id1", "user_id", "m-001"),
        ("mini_app:id1", "anonymous_id", "dev-1"),
        ("mini_app:tr1", "oaid", "oaid-9"),
        ("mini_app:tr1", "douyin_open_id", "open-1"),
        ("mini_app:al1", "user_id", "m-001"),
    } <= ids
    q = server.query("SELECT origin, ref, field, rule FROM quarantine")
    assert q == [("stream", "bad", "phone", "phone.invalid")]
    logs = server.query(
        "SELECT origin, received, accepted, quarantined FROM ingest_log ORDER BY origin"
    )
    assert logs == [("http", 4, 4, 0), ("stream", 0, 0, 1)]
    # real-time OneID: the identify and the alias share userId m-001, so one person, and
    # its golden record exists without a batch rebuild
    persons = dict(
        server.query(
            "SELECT record_id, one_id FROM identity_records "
            "WHERE record_id IN ('mini_app:id1', 'mini_app:al1')"
        )
    )
    assert set(persons) == {"mini_app:id1", "mini_app:al1"}
    assert persons["mini_app:id1"] == persons["mini_app:al1"]
    profile = server.query(
        "SELECT city, gender FROM profiles WHERE one_id = ?", [persons["mini_app:id1"]]
    )
    assert profile == [("杭州", "F")]

"""Login, sessions, throttling, scoped unmasked reads and consents on a real `mecdp serve`."""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from servers import PASSWORD, PrivacyFixture, RunningServer, run_cli, seed_privacy_workspace
from servers import start_server as start


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, PrivacyFixture]]:
    workspace = tmp_path_factory.mktemp("privacy_api") / "ws"
    fixture = seed_privacy_workspace(workspace)
    with start(workspace) as server:
        yield server, fixture


def _key(fixture: PrivacyFixture, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fixture.api_keys[role]}"}


def _audit(http: httpx.Client, fixture: PrivacyFixture, **params: str) -> list[dict[str, object]]:
    response = http.get("/v1/audit", params=params, headers=_key(fixture, "compliance"))
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()
    return rows


def test_wrong_password_is_401_and_repeated_failures_are_throttled_and_audited(
    served: tuple[RunningServer, PrivacyFixture],
) -> None:
    server, fixture = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(5):
            wrong = http.post("/v1/auth/login", json={"username": "analyst1", "password": "nope"})
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "unauthorized"
        throttled = http.post("/v1/auth/login", json={"username": "analyst1", "password": PASSWORD})
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "too_many_attempts"
        assert 0 < int(throttled.headers["Retry-After"]) <= 15 * 60
        # another user from the same address is not affected
        ok = http.post("/v1/auth/login", json={"username": "marketer1", "password": PASSWORD})
        assert ok.status_code == 200
        actions = [r["action"] for r in _audit(http, fixture) if r["actor"] == "analyst1"]
        assert actions.count("auth.login_failed") == 5
        assert "auth.login_throttled" in actions


def test_sessions_end_at_logout_and_expire(served: tuple[RunningServer, PrivacyFixture]) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        login = http.post("/v1/auth/login", json={"username": "marketer1", "password": PASSWORD})
        body = login.json()
        headers = {"Authorization": f"Bearer {body['token']}"}
        assert body["user"]["role"] == "marketer" and "password" not in login.text
        assert http.get("/v1/auth/me", headers=headers).json()["name"] == "marketer1"
        assert http.post("/v1/auth/logout", headers=headers).json() == {"logged_out": True}
        ended = http.get("/v1/auth/me", headers=headers)
        assert ended.status_code == 401 and "ended" in ended.json()["error"]["message"]

        # a correctly signed token whose time is up
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        secret = (server.workspace / "secrets" / "hash.key").read_text().strip().encode()
        signing = hmac.digest(secret, b"mecdp-session-signing-v1", "sha256")
        expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, signing, "HS256")
        answer = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
        assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
        forged = jwt.encode({**claims, "exp": int(time.time()) + 999}, b"x" * 32, "HS256")
        answer = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
        assert answer.status_code == 401
        cookie = http.get("/v1/auth/me", headers={"Cookie": f"mecdp_session={body['token']}"})
        assert cookie.status_code == 401  # logged out, via the console cookie too


def test_unmasked_reads_are_scoped_purpose_bound_and_audited(
    served: tuple[RunningServer, PrivacyFixture],
) -> None:
    server, fixture = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        mine = http.get(
            "/v1/contacts/c_sh/unmasked",
            params={"purpose": "service"},
            headers=_key(fixture, "consultant"),
        )
        assert mine.status_code == 200, mine.text
        assert mine.json()["name"] == "欧阳娜娜" and mine.json()["phone"] == "+8613812345678"
        other = http.get(
            "/v1/contacts/c_bj/unmasked",
            params={"purpose": "service"},
            headers=_key(fixture, "consultant"),
        )
        assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
        assert "李四" not in other.text and "13900001111" not in other.text
        masked = http.get("/v1/contacts/c_sh", headers=_key(fixture, "marketer"))
        assert masked.json()["name"] == "欧阳**" and masked.json()["phone"] == "138****5678"
        denied = http.get(
            "/v1/contacts/c_sh/unmasked",
            params={"purpose": "service"},
            headers=_key(fixture, "marketer"),
        )
        assert denied.status_code == 403
        wrong_purpose = http.get(
            "/v1/contacts/c_sh/unmasked",
            params={"purpose": "service"},
            headers=_key(fixture, "compliance"),
        )
        assert wrong_purpose.status_code == 403
        dsr = http.get(
            "/v1/contacts/c_bj/unmasked",
            params={"purpose": "data_subject_request"},
            headers=_key(fixture, "compliance"),
        )
        assert dsr.status_code == 200 and dsr.json()["phone"] == "+8613900001111"

        reads = _audit(http, fixture, action="personal_data.read_unmasked")
        seen = {
            (r["actor_role"], tuple(r["member_refs"]), r["purpose"], r["outcome"]) for r in reads
        }
        assert ("consultant", ("record:c_sh",), "service", "ok") in seen
        assert ("consultant", ("record:c_bj",), "service", "denied") in seen
        assert ("compliance", ("record:c_sh",), "service", "denied") in seen
        assert ("compliance", ("record:c_bj",), "data_subject_request", "ok") in seen
        denials = _audit(http, fixture, action="access.denied")
        assert any(r["actor_role"] == "marketer" for r in denials)


def test_consents_are_recorded_by_compliance_and_checked_by_others(
    served: tuple[RunningServer, PrivacyFixture],
) -> None:
    server, fixture = served
    phone = {"type": "phone", "value": "13812345678"}
    grant = {
        "identifier": phone,
        "purpose": "marketing_sms",
        "status": "granted",
        "notice_version": "2025-01",
        "notice_text": "隐私政策 v2025-01",
        "source": "mini_program",
        "evidence": "form:991",
        "occurred_at": "2025-05-01T08:00:00+08:00",
    }
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert (
            http.post("/v1/consents", json=grant, headers=_key(fixture, "marketer")).status_code
            == 403
        )
        created = http.post("/v1/consents", json=grant, headers=_key(fixture, "compliance"))
        assert created.status_code == 201, created.text
        ref = created.json()["member_ref"]
        assert ref.startswith("phone:bi:") and "13812345678" not in created.text
        check = {
            "identifier": {"type": "phone", "value": "+8613812345678"},
            "purpose": "marketing_sms",
        }
        decision = http.post("/v1/consents/check", json=check, headers=_key(fixture, "marketer"))
        assert decision.json()["allowed"] is True
        assert decision.json()["consent_ref"] == created.json()["consent_id"]
        sensitive = http.post(
            "/v1/consents/check",
            json={**check, "sensitive": True},
            headers=_key(fixture, "marketer"),
        )
        assert sensitive.json()["allowed"] is False
        bad = http.post(
            "/v1/consents",
            json={**grant, "purpose": "telepathy"},
            headers=_key(fixture, "compliance"),
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "purpose"
        listed = http.get(
            "/v1/consents", params={"member_ref": ref}, headers=_key(fixture, "compliance")
        )
        assert [c["status"] for c in listed.json()["current"]] == ["granted"]
        assert (
            http.get(
                "/v1/consents", params={"member_ref": ref}, headers=_key(fixture, "analyst")
            ).status_code
            == 403
        )
        recorded = _audit(http, fixture, action="consent.recorded")
        assert recorded and recorded[0]["member_refs"] == [ref]
        everything = json.dumps(_audit(http, fixture, limit="1000"), ensure_ascii=False)
        for secret in ("13812345678", "13900001111", "欧阳娜娜", "李四", PASSWORD):
            assert secret not in everything


def test_cli_manages_users_and_keys_through_the_server_and_verifies_the_chain(
    served: tuple[RunningServer, PrivacyFixture], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    monkeypatch.setenv("MECDP_USER_PASSWORD", "a long enough password")
    added = run_cli(
        server.workspace, "user", "add", "zhou.front", "--role", "consultant", "--store", "SH01"
    )
    assert added.returncode == 0, added.stderr
    bad = run_cli(server.workspace, "user", "add", "boss.wang", "--role", "boss")
    assert bad.returncode == 2 and "role" in bad.stderr
    key = run_cli(server.workspace, "apikey", "create", "journey engine", "--role", "marketer")
    assert key.returncode == 0, key.stderr
    api_key = key.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {api_key}"})
        assert me.json()["role"] == "marketer"
        login = http.post(
            "/v1/auth/login", json={"username": "zhou.front", "password": "a long enough password"}
        )
        assert login.status_code == 200 and login.json()["user"]["store_code"] == "SH01"
    verified = run_cli(server.workspace, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stdout
    assert os.environ["MECDP_USER_PASSWORD"] not in verified.stdout + verified.stderr

"""Logs never carry secrets or personal data: login, consent and unmasked-read flows."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from servers import PASSWORD, seed_privacy_workspace

from mecdp.api.app import create_app
from mecdp.config import Settings


def test_no_password_token_phone_or_name_in_any_log_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = tmp_path / "ws"
    fixture = seed_privacy_workspace(workspace)
    settings = Settings(workspace=workspace)
    caplog.set_level(logging.DEBUG)
    app = create_app(settings, write_server_file=False)
    token = asyncio.run(_flows(app, fixture.api_keys["compliance"]))
    app.state.mecdp.store.close()
    assert caplog.records, "the flows log their events"
    everything = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    secrets = [
        PASSWORD,
        "wrong-password",
        token,
        fixture.api_keys["compliance"],
        (workspace / "secrets" / "admin.token").read_text().strip(),
        "13812345678",
        "1381234",
        "欧阳娜娜",
        "欧阳",
    ]
    for secret in secrets:
        assert secret not in everything
    events = {r.getMessage() for r in caplog.records if r.name.startswith("mecdp.privacy")}
    assert {"auth.login_failed", "auth.login_succeeded", "consent.recorded"} <= events


async def _flows(app: FastAPI, compliance_key: str) -> str:
    """Failed and good login, unmasked read, consent (good and bad), logout; returns the token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://privacy.test") as http:
        wrong = {"username": "consultant1", "password": "wrong-password"}
        assert (await http.post("/v1/auth/login", json=wrong)).status_code == 401
        good = {"username": "consultant1", "password": PASSWORD}
        token = str((await http.post("/v1/auth/login", json=good)).json()["token"])
        consultant = {"Authorization": f"Bearer {token}"}
        read = await http.get(
            "/v1/contacts/c_sh/unmasked", params={"purpose": "service"}, headers=consultant
        )
        assert read.json()["phone"] == "+8613812345678"
        compliance = {"Authorization": f"Bearer {compliance_key}"}
        consent = {
            "identifier": {"type": "phone", "value": "13812345678"},
            "purpose": "wecom_contact",
            "status": "granted",
            "notice_version": "v3",
            "notice_text": "企业微信添加好友告知",
            "source": "in_store_form",
            "evidence": "paper:2025-001",
        }
        created = await http.post("/v1/consents", json=consent, headers=compliance)
        assert created.status_code == 201
        bad = await http.post("/v1/consents", json={**consent, "purpose": "x"}, headers=compliance)
        assert bad.status_code == 400
        assert (await http.post("/v1/auth/logout", headers=consultant)).status_code == 200
    return token

"""The serving cache in front of the store: a repeated masked lookup is answered from memory
with the same bytes, and never outlives what it shows: a consent, a refresh, a tag run, a
revoked key or an ended session shows on the next request, also when the write was still
uncommitted while a reader looked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from profiles.conftest import PHONE

from mecdp.api.app import create_app
from mecdp.api.state import AppState
from mecdp.config import Settings
from mecdp.privacy import auth, consent
from mecdp.profiles import service, serving
from mecdp.profiles.serving import ServingCache
from mecdp.store import Store

PHONE_REF = f"phone:{PHONE[3:]}"


class AppClient:
    """Requests straight into the ASGI app (the middleware included), one at a time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(url, **kwargs)

        return asyncio.run(send())


@pytest.fixture
def app(store: Store, settings: Settings, member: str) -> Iterator[tuple[AppClient, AppState]]:
    application = create_app(settings, store=store, write_server_file=False)
    yield AppClient(application), application.state.mecdp


def _key(store: Store, role: str = "marketer") -> dict[str, str]:
    key, _ = auth.create_api_key(store.cursor(), "test", role, "test", store_code="SH01")
    return {"Authorization": f"Bearer {key}"}


def _grant(cur: object, one_id: str, purpose: str = "marketing_sms") -> None:
    consent.record_consent(
        cur,  # type: ignore[arg-type]
        recorded_by="test",
        member_ref=service.member_ref(one_id),
        purpose=purpose,
        status="granted",
        notice_version="v1",
        notice_text="隐私政策 v1",
        source="in_store_form",
        evidence="form-1",
        occurred_at="2025-01-01T10:00:00Z",
    )


def _grant_uncommitted(store: Store, one_id: str) -> Any:
    """A consent granted in a transaction left open: the caller commits or rolls back."""
    writer = store.con.cursor()
    writer.execute("BEGIN TRANSACTION")
    _grant(writer, one_id)
    return writer


def _statuses(client: AppClient, one_id: str, headers: dict[str, str]) -> list[int]:
    return [client.get(f"/v1/profiles/{one_id}", headers=headers).status_code for _ in "12"]


def _cache(state: AppState) -> ServingCache:
    assert state.serving is not None
    return state.serving


def test_a_repeated_masked_lookup_is_served_from_the_cache_with_the_same_bytes(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    headers = _key(store)
    first = client.get(f"/v1/profiles/{member}", headers=headers)
    assert first.status_code == 200, first.text
    assert _cache(state).answer(member) == first.content
    by_phone = client.get(f"/v1/profiles/{PHONE_REF}", headers=headers)
    assert by_phone.content == first.content
    assert _cache(state).person(PHONE_REF) == member
    again = client.get(f"/v1/profiles/{PHONE_REF}", headers=headers)
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert again.json()["masked"] is True and again.json()["identity"]["phone"] == "139****4586"
    # timelines, unmasked reads and unknown callers take the full path
    assert client.get(f"/v1/profiles/{member}", params={"timeline": 2}).status_code == 401
    assert client.get(f"/v1/profiles/{member}").status_code == 401


def test_a_consent_shows_on_the_next_lookup(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    headers = _key(store)
    before = client.get(f"/v1/profiles/{member}", headers=headers).json()["consents"]
    _grant(store.cursor(), member)
    after = client.get(f"/v1/profiles/{member}", headers=headers).json()["consents"]
    assert len(after) == len(before) + 1


def test_a_read_during_an_uncommitted_write_is_not_cached(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    headers = _key(store)
    old = client.get(f"/v1/profiles/{member}", headers=headers).content
    writer = _grant_uncommitted(store, member)
    # the reader still sees the committed state, and must not keep it
    during = client.get(f"/v1/profiles/{member}", headers=headers).content
    assert during == old
    assert _cache(state).answer(member) is None
    writer.execute("COMMIT")
    new = [client.get(f"/v1/profiles/{member}", headers=headers).content for _ in range(3)]
    assert new[0] != old and new[0] == new[1] == new[2]
    assert _cache(state).answer(member) == new[0]


def test_a_rolled_back_write_leaves_the_person_uncached_but_correct(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    headers = _key(store)
    old = client.get(f"/v1/profiles/{member}", headers=headers).content
    writer = _grant_uncommitted(store, member)
    writer.execute("ROLLBACK")
    for _ in range(2):
        assert client.get(f"/v1/profiles/{member}", headers=headers).content == old
    assert _cache(state).answer(member) is None


def test_a_refresh_drops_the_person_and_the_resolution_of_its_identifiers(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    headers = _key(store)
    client.get(f"/v1/profiles/{PHONE_REF}", headers=headers)
    assert _cache(state).person(PHONE_REF) == member
    with store.transaction() as cur:
        service.refresh_profiles(cur, [member])
    assert _cache(state).person(PHONE_REF) is None
    assert _cache(state).answer(member) is None


def test_revocation_and_logout_take_effect_on_the_next_request(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    headers = _key(store)
    assert _statuses(client, member, headers) == [200, 200]  # the second one from memory
    key_id = headers["Authorization"].split("_")[1]
    auth.revoke_api_key(store.cursor(), key_id)
    assert client.get(f"/v1/profiles/{member}", headers=headers).status_code == 401

    auth.add_user(store.cursor(), "mia", "a-long-password", "marketer")
    token, _, principal = auth.login(
        store.cursor(), state.settings, "mia", "a-long-password", "127.0.0.1"
    )
    session = {"Authorization": f"Bearer {token}"}
    assert _statuses(client, member, session) == [200, 200]  # the second one from memory
    auth.logout(store.cursor(), principal)
    assert client.get(f"/v1/profiles/{member}", headers=session).status_code == 401


def test_a_role_change_takes_effect_on_the_next_request(
    app: tuple[AppClient, AppState], store: Store, member: str
) -> None:
    client, state = app
    auth.add_user(store.cursor(), "leo", "a-long-password", "marketer")
    token, _, _ = auth.login(store.cursor(), state.settings, "leo", "a-long-password", "1.2.3.4")
    session = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/v1/profiles/{member}", headers=session).status_code == 200
    auth.update_user(store.cursor(), "leo", role="analyst")
    assert client.get(f"/v1/profiles/{member}", headers=session).status_code == 401


def test_names_written_but_never_read_do_not_pile_up(
    app: tuple[AppClient, AppState], store: Store, member: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, state = app
    monkeypatch.setattr(serving, "_PENDING_SWEEP", 5)
    with store.transaction() as cur:
        serving.changed(cur, [serving.one_id_name(f"OID9{i:07d}") for i in range(10)])
    assert len(_cache(state)._pending) == 10
    client.get(f"/v1/profiles/{member}", headers=_key(store))  # a fill settles them all
    assert _cache(state)._pending == {}
    assert client.get(f"/v1/profiles/{member}", headers=_key(store)).status_code == 200

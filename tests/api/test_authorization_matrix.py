"""The authorisation matrix: every route of the app, every role, against the permission table.

Each route must declare exactly one scope (`require(Permission.X)` or PUBLIC); the collector
paths (served by the collector middleware) take write keys only. A new route without a
declaration fails `test_every_route_declares_exactly_one_scope`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, RouteContext
from servers import PASSWORD, PrivacyFixture, RunningServer, seed_privacy_workspace, start_server

from mecdp.api.app import create_app
from mecdp.api.deps import PUBLIC, PUBLIC_SCOPE, declared_scopes, require
from mecdp.api.deps import app_routes as all_routes
from mecdp.collect import api as collector_api
from mecdp.config import Settings
from mecdp.privacy.roles import Permission, Role, role_may
from mecdp.store import open_store

# Routes FastAPI itself adds: the OpenAPI schema and its viewers (no data).
FRAMEWORK_PUBLIC = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
DENIED = {401, 403}


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> list[RouteContext]:
    workspace = tmp_path_factory.mktemp("routes")
    store = open_store(None)
    try:
        app = create_app(Settings(workspace=workspace), store=store, write_server_file=False)
        return all_routes(app.routes)
    finally:
        store.close()


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, PrivacyFixture]]:
    workspace = tmp_path_factory.mktemp("matrix") / "ws"
    fixture = seed_privacy_workspace(workspace)
    with start_server(workspace) as server:
        yield server, fixture


def _declared(route: RouteContext) -> list[str]:
    if isinstance(route.original_route, APIRoute):
        return declared_scopes(route)
    return [PUBLIC_SCOPE] if route.path in FRAMEWORK_PUBLIC else []


def test_every_route_declares_exactly_one_scope(app_routes: list[RouteContext]) -> None:
    assert len(app_routes) > 10
    undeclared = {
        f"{sorted(r.methods or [])} {r.path}": _declared(r)
        for r in app_routes
        if len(_declared(r)) != 1
    }
    assert undeclared == {}, "routes must declare exactly one permission or PUBLIC"


def test_the_check_catches_an_undeclared_route() -> None:
    app = FastAPI()

    @app.get("/open")
    def _open() -> None: ...

    @app.get("/guarded", dependencies=[require(Permission.AUDIT_READ)])
    def _guarded() -> None: ...

    @app.get("/public", dependencies=[PUBLIC])
    def _public() -> None: ...

    router = APIRouter()

    @router.get("/included")
    def _included() -> None: ...

    app.include_router(router, dependencies=[require(Permission.USERS_MANAGE)])
    found = {
        r.path: declared_scopes(r)
        for r in all_routes(app.routes)
        if isinstance(r.original_route, APIRoute)
    }
    assert found == {
        "/open": [],
        "/guarded": ["audit.read"],
        "/public": ["public"],
        "/included": ["users.manage"],
    }


def _credentials(fixture: PrivacyFixture, admin_token: str) -> dict[str, dict[str, str]]:
    creds = {role: {"Authorization": f"Bearer {key}"} for role, key in fixture.api_keys.items()}
    creds["admin_token"] = {"Authorization": f"Bearer {admin_token}"}
    creds["write_key_bearer"] = {"Authorization": f"Bearer {fixture.write_key}"}
    basic = base64.b64encode(f"{fixture.write_key}:".encode()).decode()
    creds["write_key_basic"] = {"Authorization": f"Basic {basic}"}
    creds["anonymous"] = {}
    return creds


def _expected_allowed(scope: str, who: str) -> bool:
    if scope == PUBLIC_SCOPE:
        return True
    if who == "admin_token":
        return role_may(Role.ADMIN, Permission(scope))
    if who in {r.value for r in Role}:
        return role_may(who, Permission(scope))
    return False  # anonymous and write keys


def test_every_route_with_every_role(
    app_routes: list[RouteContext], seeded: tuple[RunningServer, PrivacyFixture]
) -> None:
    server, fixture = seeded
    creds = _credentials(fixture, server.admin_headers()["Authorization"].split()[1])
    wrong: list[str] = []
    checked = 0
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for route in app_routes:
            (scope,) = _declared(route)
            path = re.sub(r"\{[^}]+\}", "probe", route.path)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                for who, headers in creds.items():
                    body = {} if method in {"POST", "PUT", "PATCH"} else None
                    response = http.request(method, path, headers=headers, json=body)
                    allowed = response.status_code not in DENIED
                    checked += 1
                    if allowed != _expected_allowed(scope, who):
                        wrong.append(f"{method} {route.path} as {who}: {response.status_code}")
                    if not allowed:
                        error = response.json()["error"]
                        assert error["code"] in {"unauthorized", "forbidden"} and error["message"]
    assert wrong == []
    assert checked > 100


def _collector_paths() -> list[tuple[str, str, bool]]:
    """(method, path, needs a write key) for the collector middleware's paths."""
    paths = [("POST", p, True) for p in collector_api.COLLECT_PATHS]
    paths.append(("GET", collector_api.SOURCE_CONFIG_PATH, True))
    paths.append(("GET", "/v1/projects/{key}/settings", True))
    paths.append(("GET", collector_api.STATUS_PATH, False))  # progress counters, no data
    return paths


def test_collector_paths_take_write_keys_and_nothing_else(
    seeded: tuple[RunningServer, PrivacyFixture],
) -> None:
    server, fixture = seeded
    creds = _credentials(fixture, server.admin_headers()["Authorization"].split()[1])
    wrong: list[str] = []
    event = {"type": "track", "event": "Page Viewed", "anonymousId": "a1", "messageId": "m1"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for method, template, needs_key in _collector_paths():
            for who, headers in creds.items():
                key = fixture.write_key if who == "write_key_basic" else "not-a-write-key"
                path = template.replace("{key}", key)
                body = {"batch": [event]} if template in collector_api.BATCH_PATHS else event
                response = http.request(
                    method, path, headers=headers, json=body if method == "POST" else None
                )
                allowed = response.status_code not in DENIED
                expected = (not needs_key) or who == "write_key_basic"
                if allowed != expected:
                    wrong.append(f"{method} {path} as {who}: {response.status_code}")
    assert wrong == []


def test_sessions_get_the_same_answers_as_api_keys(
    seeded: tuple[RunningServer, PrivacyFixture],
) -> None:
    server, _ = seeded
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for role in Role:
            login = http.post(
                "/v1/auth/login", json={"username": f"{role.value}1", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            me = http.get("/v1/auth/me", headers=headers)
            assert me.json()["role"] == role.value
            audit = http.get("/v1/audit", headers=headers)
            assert (audit.status_code == 200) == role_may(role, Permission.AUDIT_READ)
            users = http.get("/v1/users", headers=headers)
            assert (users.status_code == 200) == role_may(role, Permission.USERS_MANAGE)

"""Console without a browser: formatting, the message catalog, sign-in redirects, assets."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from servers import PASSWORD, RunningServer, seed_privacy_workspace, start_server

from mecdp.console.formatting import format_money, format_time
from mecdp.console.messages import MESSAGES, pick_lang


def test_money_in_yuan_with_wan() -> None:
    assert format_money(1_280_000) == "¥1.28万"
    assert format_money(100_000_000) == "¥100万"
    assert format_money(1_000_000) == "¥1万"
    assert format_money(98_000) == "¥980"
    assert format_money(12_345) == "¥123.45"
    assert format_money(1_280_000, lang="en") == "¥12,800"
    assert format_money(None) == "—"


def test_times_in_shanghai() -> None:
    assert format_time("2025-01-01T16:30:00Z") == "2025-01-02 00:30"
    assert format_time("2025-01-01T16:30:00Z", with_time=False) == "2025-01-02"
    assert format_time(None) == "—"


def test_catalog_is_complete_in_both_languages() -> None:
    assert set(MESSAGES["zh-CN"]) == set(MESSAGES["en"])
    assert pick_lang(None, None) == "zh-CN"
    assert pick_lang("en", "zh-CN") == "en"
    assert pick_lang(None, "en") == "en"
    assert pick_lang("fr", None) == "zh-CN"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workspace = tmp_path_factory.mktemp("console_pages") / "ws"
    seed_privacy_workspace(workspace)
    with start_server(workspace) as running:
        yield running


def test_browsers_are_sent_to_login_and_api_clients_get_json(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        browser = http.get("/console/members?q=1", headers={"Accept": "text/html"})
        assert browser.status_code == 303
        assert browser.headers["location"] == "/console/login?next=/console/members%3Fq%3D1"
        client = http.get("/console/members")
        assert client.status_code == 401 and client.json()["error"]["code"] == "unauthorized"
        login_page = http.get("/console/login")
        assert login_page.status_code == 200 and "登录" in login_page.text
        assert http.get("/console/login?lang=en").cookies.get("mecdp_lang") == "en"


def test_login_sets_the_session_cookie_and_logout_ends_it(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        done = http.post(
            "/console/login",
            data={"username": "marketer1", "password": PASSWORD, "next": "//evil.example/"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/console/members"
        cookie = done.headers["set-cookie"]
        assert "mecdp_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        page = http.get("/console/members")
        assert page.status_code == 200 and "会员查询" in page.text
        assert http.post("/console/logout").status_code == 303
        assert http.get("/console/members").status_code == 401


def test_assets_are_served_by_the_app(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        css = http.get("/console/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "WenQuanYi Micro Hei" in css.text
        assert http.get("/console/static/console.js").status_code == 200
        assert http.get("/console/static/../views.py").status_code == 404
        assert http.get("/console/static/missing.css").status_code == 404

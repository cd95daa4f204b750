"""A demo chain (300 members) behind a real `mecdp serve`, users per role, and Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import RunningServer, free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "console test password"  # noqa: S105 - a test user's password
DEMO_MEMBERS = 300


@dataclass
class DemoMember:
    one_id: str
    phone: str  # E.164, as stored after decryption
    store_code: str
    timeline_rows: int


@dataclass
class ConsoleSite:
    server: RunningServer
    member: DemoMember


def _cli(workspace: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mecdp", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MECDP_WORKSPACE": str(workspace), "COLUMNS": "200", **env},
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _pick_member(workspace: Path) -> DemoMember:
    """A member with a phone, a home store and more than two pages of timeline."""
    from mecdp.config import Settings
    from mecdp.profiles import personal
    from mecdp.store import open_store

    settings = Settings(workspace=workspace)
    store = open_store(settings.db_path)
    try:
        row = (
            store.cursor()
            .execute(
                """
                SELECT p.one_id, p.home_store, i.id_value, i.id_value_enc, count(*) AS n
                FROM profiles p
                JOIN profile_identifiers i ON i.one_id = p.one_id AND i.id_type = 'phone'
                JOIN profile_timeline t ON t.one_id = p.one_id AND NOT t.sensitive
                WHERE p.home_store IS NOT NULL
                GROUP BY ALL HAVING count(*) > 30
                ORDER BY n DESC, p.one_id LIMIT 1
                """
            )
            .fetchone()
        )
    finally:
        store.close()
    assert row is not None, "the demo chain has no member with a long timeline"
    phone = personal.reveal_identifier(settings, str(row[2]), row[3])
    return DemoMember(str(row[0]), phone, str(row[1]), int(row[4]))


@pytest.fixture(scope="session")
def chinese_font() -> None:
    """Chinese must render as text, not boxes: the WenQuanYi font has to be installed."""
    fc_list = shutil.which("fc-list")
    assert fc_list, "fontconfig is missing (apt-get install fonts-wqy-microhei)"
    fonts = subprocess.run([fc_list], capture_output=True, text=True, check=True).stdout
    assert "wqy" in fonts.lower() or "WenQuanYi" in fonts, "install fonts-wqy-microhei"


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, chinese_font: None) -> Iterator[ConsoleSite]:
    workspace = tmp_path_factory.mktemp("console") / "ws"
    _cli(
        workspace, "demo", "--members", str(DEMO_MEMBERS), "--no-serve", "--port", str(free_port())
    )
    member = _pick_member(workspace)
    pw = {"MECDP_USER_PASSWORD": PASSWORD}
    _cli(workspace, "user", "add", "marketer1", "--role", "marketer", **pw)
    _cli(
        workspace,
        "user",
        "add",
        "consultant1",
        "--role",
        "consultant",
        "--store",
        member.store_code,
        **pw,
    )
    other = "BJ01" if member.store_code != "BJ01" else "SH01"
    _cli(workspace, "user", "add", "consultant2", "--role", "consultant", "--store", other, **pw)
    with start_server(workspace) as server:
        yield ConsoleSite(server, member)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium fonts-wqy-microhei")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
    )
    pg = context.new_page()
    yield pg
    context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

"""The console in real Chromium against a real server with the demo chain loaded."""

from __future__ import annotations

from typing import Any

import pytest
from console.conftest import PASSWORD, ConsoleSite, screenshot

from mecdp.privacy.masking import mask_phone

pytestmark = pytest.mark.browser


def _login(page: Any, site: ConsoleSite, username: str, target: str = "/console/members") -> None:
    page.goto(site.server.url + target)
    assert "/console/login" in page.url  # not logged in: sent to the login page
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def _spaced(phone: str) -> str:
    """+8613812345678 -> '138 1234 5678', as a front-desk user types it."""
    local = phone.removeprefix("+86")
    return f"{local[:3]} {local[3:7]} {local[7:]}"


def test_marketer_searches_by_phone_opens_the_profile_and_pages_the_timeline(
    site: ConsoleSite, page: Any
) -> None:
    _login(page, site, "marketer1")
    assert page.url.endswith("/console/members")
    assert "会员查询" in page.inner_text("body")
    page.fill("[data-testid=search-q]", _spaced(site.member.phone))
    page.click("[data-testid=search-submit]")
    results = page.locator("[data-testid=search-results]")
    masked = mask_phone(site.member.phone)
    assert masked in results.inner_text()
    assert site.member.phone.removeprefix("+86") not in page.content()
    screenshot(page, "01-search-marketer")
    page.click("[data-testid=hit-link]")
    page.wait_for_load_state()
    assert page.url.endswith(f"/console/members/{site.member.one_id}")
    text = page.inner_text("body")
    assert "会员画像" in page.title() or "会员" in text
    assert page.inner_text("[data-testid=phone]") == masked
    assert page.inner_text("[data-testid=mask-state]") == "已脱敏显示"
    assert "¥" in page.inner_text("[data-testid=total-spend]")
    first_rows = page.locator("[data-testid=timeline] tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.record)"
    )
    assert len(first_rows) == 15
    screenshot(page, "02-profile-marketer")
    page.click("[data-testid=timeline-next]")
    page.wait_for_load_state()
    second_rows = page.locator("[data-testid=timeline] tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.record)"
    )
    assert second_rows and not set(second_rows) & set(first_rows)
    screenshot(page, "03-profile-timeline-page-2")
    page.click("[data-testid=timeline-first]")
    page.wait_for_load_state()
    page.select_option("[data-testid=filter-kind]", "order")
    page.wait_for_url("**kind=order**")
    kinds = page.locator("[data-testid=timeline] .chip").all_inner_texts()
    assert kinds and set(kinds) == {"订单"}


def test_masking_changes_with_role(site: ConsoleSite, page: Any) -> None:
    target = f"/console/members/{site.member.one_id}"
    _login(page, site, "consultant1", target)
    assert page.url.endswith(target)
    assert page.inner_text("[data-testid=phone]") == site.member.phone
    assert page.inner_text("[data-testid=mask-state]").startswith("完整显示")
    screenshot(page, "04-profile-consultant-own-store")
    page.click("button:has-text('退出登录')")
    page.wait_for_load_state()
    _login(page, site, "consultant2", target)
    assert page.inner_text("[data-testid=phone]") == mask_phone(site.member.phone)
    assert "不属于您的门店" in page.inner_text("body")
    screenshot(page, "05-profile-consultant-other-store")


def test_english_switch_is_remembered(site: ConsoleSite, page: Any) -> None:
    target = f"/console/members/{site.member.one_id}"
    _login(page, site, "marketer1", target)
    page.click("[data-testid=lang-switch]")
    page.wait_for_load_state()
    assert "Member profile" in page.title()
    page.goto(site.server.url + "/console/members")
    assert "Member search" in page.inner_text("body")
    screenshot(page, "06-search-english")
    page.goto(site.server.url + target + "?lang=zh-CN")
    assert "会员画像" in page.title()


def test_wrong_password_stays_on_the_login_page(site: ConsoleSite, page: Any) -> None:
    page.goto(site.server.url + "/console/login")
    page.fill("input[name=username]", "marketer1")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.inner_text("[role=alert]")
    screenshot(page, "00-login-failed")

"""The console's 360° profile page shows the member's tags, scores and treatment due dates in
Chinese (English on request); due dates only for a consultant of the member's store after the
member's separate consent; empty sections say so."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from profiles.conftest import seed_profile_workspace
from servers import PASSWORD, PrivacyFixture, RunningServer, start_server


@dataclass
class Site:
    server: RunningServer
    fixture: PrivacyFixture
    one_id: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workspace = tmp_path_factory.mktemp("console_profile") / "ws"
    fixture, one_id = seed_profile_workspace(workspace)
    with start_server(workspace) as server:
        yield Site(server, fixture, one_id)


@contextmanager
def _logged_in(site: Site, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.server.url, timeout=30) as http:
        done = http.post("/console/login", data={"username": username, "password": PASSWORD})
        assert done.status_code == 303, done.text
        yield http


def _section(html: str, testid: str) -> str:
    """The HTML of the element with data-testid=`testid` up to its section's end."""
    start = html.index(f'data-testid="{testid}"')
    return html[start : html.index("</section>", start)]


def test_tags_and_scores_in_chinese_and_due_dates_hidden_from_a_marketer(site: Site) -> None:
    with _logged_in(site, "marketer1") as http:
        page = http.get(f"/console/members/{site.one_id}")
        assert page.status_code == 200, page.text
        html = page.text
        tags = _section(html, "tags")
        assert "会员标签" in html
        assert "沉睡" in tags and "价值分层" in tags and "高价值" in tags
        assert "2025-05-01" in tags  # since (Asia/Shanghai day)
        scores = _section(html, "scores")
        shown = ("重要挽留", "高价值", "1 / 3 / 5", "395 天", "42%", "疗程型", "低互动", "注射")
        for text in shown:
            assert text in scores, text
        assert "¥2,600" in scores  # 12-month CLV, 260,000.25 fen
        assert "需会员单独同意" in _section(html, "due-hidden")
        assert "玻尿酸填充" not in _section(html, "due-hidden")
        english = http.get(f"/console/members/{site.one_id}", params={"lang": "en"}).text
        assert "Dormant" in _section(english, "tags")
        assert "Important to win back" in _section(english, "scores")


def test_due_dates_for_a_consultant_of_the_store_with_the_members_consent(site: Site) -> None:
    with _logged_in(site, "consultant1") as http:
        before = http.get(f"/console/members/{site.one_id}").text
        assert 'data-testid="due-hidden"' in before  # no separate consent yet
        granted = httpx.post(
            f"{site.server.url}/v1/consents",
            json={
                "member_ref": f"one_id:{site.one_id}",
                "purpose": "sensitive_medical_processing",
                "status": "granted",
                "notice_version": "v1",
                "notice_text": "我同意处理我的医疗信息",
                "source": "in_store_form",
                "evidence": "form-7",
            },
            headers={"Authorization": f"Bearer {site.fixture.api_keys['compliance']}"},
            timeout=30,
        )
        assert granted.status_code == 201, granted.text
        page = http.get(f"/console/members/{site.one_id}").text
        assert 'data-tag="treatment_overdue"' in _section(page, "tags")  # a treatment tag
        due = _section(page, "due")
        assert "玻尿酸填充" in due and "已过期" in due and "2025-01-05" in due
        assert "肉毒素除皱" in due and "即将到期" in due and "2025-07-29" in due
    with _logged_in(site, "marketer1") as http:  # the consent gives a marketer nothing
        page = http.get(f"/console/members/{site.one_id}").text
        assert 'data-testid="due-hidden"' in page and "已过期" not in page
        assert 'data-tag="treatment_overdue"' not in page


def test_empty_sections_say_so(site: Site) -> None:
    with _logged_in(site, "marketer1") as http:
        hits = http.get("/v1/profiles/search", params={"q": "13812345678"}).json()
        assert len(hits) == 1  # a member without tags, scores or due dates
        page = http.get(f"/console/members/{hits[0]['one_id']}")
        assert page.status_code == 200, page.text
        assert "暂无标签" in _section(page.text, "no-tags")
        assert "暂无评分" in _section(page.text, "no-scores")

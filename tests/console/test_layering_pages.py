"""Console pages for member layering (会员分层) on a real server: the seeded members of
tests/compute/layering_seed.py computed as of `EARLY` and `LATE` through the API, then the
overview, the tag catalogue and detail, and the migration matrix, with the numbers the API
reports for the same store, per role and language; the 立即计算 button on a fresh server; and
one walk through the pages in real Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from compute.layering_seed import EARLY, LATE, PERSONS, Members, seed_workspace
from console.conftest import screenshot
from servers import PASSWORD, PrivacyFixture, RunningServer, start_server

HTML = {"Accept": "text/html"}
TIERS_ZH = {"high_value": "高价值", "potential": "潜力", "dormant": "休眠"}
RFM_GROUPS_ZH = (
    *("重要价值", "重要发展", "重要保持", "重要挽留"),
    *("一般价值", "一般发展", "一般保持", "一般挽留"),
)


@dataclass
class Site:
    server: RunningServer
    fixture: PrivacyFixture
    members: Members
    before_first_run: dict[str, httpx.Response]  # console pages of a fresh install


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workspace = tmp_path_factory.mktemp("layering_console") / "ws"
    fixture, members = seed_workspace(workspace)
    with start_server(workspace) as server:
        with _session(server, "marketer") as console:
            before = {p: console.get(f"/console/layering{p}") for p in ("", "/tags", "/migration")}
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for as_of in (EARLY, LATE):
                done = http.post(
                    "/v1/compute",
                    json={"as_of": as_of.isoformat()},
                    headers=_key(fixture, "marketer"),
                )
                assert done.status_code == 200, done.text
        yield Site(server, fixture, members, before)


def _key(fixture: PrivacyFixture, role: str = "analyst") -> dict[str, str]:
    return {"Authorization": f"Bearer {fixture.api_keys[role]}"}


def _api(site: Site, path: str, **params: str) -> Any:
    with httpx.Client(base_url=site.server.url, timeout=30) as http:
        response = http.get(path, params=params, headers=_key(site.fixture))
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def _session(server: RunningServer, role: str) -> Iterator[httpx.Client]:
    """A browser-like client logged in to the console as `<role>1`."""
    with httpx.Client(base_url=server.url, timeout=120, headers=HTML) as http:
        done = http.post("/console/login", data={"username": f"{role}1", "password": PASSWORD})
        assert done.status_code == 303, done.text
        yield http


class _Tables(HTMLParser):
    """Rows of the tables on a page, by the table's data-testid: (row attributes, cells)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "table" and "data-testid" in found:
            self._table = found["data-testid"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append((found, []))
        elif tag in {"td", "th"} and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None and self._table is not None:
            self.tables[self._table][-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(page: str) -> dict[str, list[tuple[dict[str, str], list[str]]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _yuan(text: str) -> float:
    """¥3,000 -> 3000; ¥1.1万 -> 11000."""
    number = text.removeprefix("¥").replace(",", "")
    return float(number.removesuffix("万")) * 10_000 if number.endswith("万") else float(number)


def _column_by_value(rows: list[tuple[dict[str, str], list[str]]], column: int) -> dict[str, int]:
    """{data-value: the count in `column`} for body rows."""
    return {a["data-value"]: _count(cells[column]) for a, cells in rows if "data-value" in a}


def test_pages_before_the_first_run_say_so(site: Site) -> None:
    overview, tags, migration = (site.before_first_run[p] for p in ("", "/tags", "/migration"))
    assert overview.status_code == 200 and "尚未计算会员分层" in overview.text
    counts = _column_by_value(_tables(overview.text)["layer-value_tier"], 1)
    assert counts == dict.fromkeys(TIERS_ZH, 0)
    assert tags.status_code == 200 and "暂无标签定义" in tags.text
    assert migration.status_code == 200 and "尚未计算会员分层" in migration.text
    assert 'data-testid="matrix"' not in migration.text


def test_overview_shows_the_latest_run_and_counts_the_store_reports(site: Site) -> None:
    with _session(site.server, "marketer") as http:
        page = http.get("/console/layering")
    assert page.status_code == 200
    text = page.text
    assert "<title>会员分层 · MeCDP</title>" in text
    assert 'data-testid="run-as-of">2025-06-30 08:00<' in text  # LATE in Asia/Shanghai
    assert f'data-testid="run-members">{PERSONS}<' in text
    assert re.search(r'<button type="submit" class="primary" data-testid="compute">立即计算<', text)
    tables = _tables(text)
    tags = {t["tag_id"]: t for t in _api(site, "/v1/tags")}
    value_rows = tables["layer-value_tier"]
    assert [cells[0] for _, cells in value_rows[1:]] == list(TIERS_ZH.values())
    assert _column_by_value(value_rows, 1) == {
        v: tags["value_tier"]["values"].get(v, 0) for v in TIERS_ZH
    }
    assert sum(tags["value_tier"]["values"].values()) == PERSONS
    rfm_rows = tables["layer-rfm_segment"]
    assert tuple(cells[0] for _, cells in rfm_rows[1:]) == RFM_GROUPS_ZH
    assert {k: n for k, n in _column_by_value(rfm_rows, 2).items() if n} == (
        tags["rfm_segment"]["values"]
    )
    for kind in ("purchase_tier", "interaction_tier"):
        counts = _column_by_value(tables[f"layer-{kind}"], 1)
        assert {k: n for k, n in counts.items() if n} == tags[kind]["values"]
    assert "VIP 高端服务常客" in text and "高互动" in text
    # spend in the 365-day RFM window as ¥ (with 万): the orders of ¥3,000 and ¥8,000 (the
    # lapsed member's ¥5,000 of 2024-06-01 is older)
    assert sum(_yuan(cells[3]) for _, cells in value_rows[1:]) == 3000 + 8000
    for tag_id, label in (("treatment_due_soon", "即将到期"), ("treatment_overdue", "已过期")):
        due = re.search(
            rf'data-testid="due-{tag_id}"><span class="stat-label">{label}</span>'
            r'<span class="stat-value">([\d,]+)<',
            text,
        )
        assert due and _count(due.group(1)) == tags[tag_id]["members"]


def test_roles_without_the_permission_get_no_button_or_a_forbidden_page(site: Site) -> None:
    with _session(site.server, "analyst") as http:
        page = http.get("/console/layering")
        assert page.status_code == 200 and "高价值" in page.text
        assert 'disabled title="立即计算需要标签管理权限"' in page.text
        token = re.search(r'name="token" value="(\w+)"', page.text)
        assert token
        denied = http.post("/console/layering/compute", data={"token": token.group(1)})
        assert denied.status_code == 403 and 'role="alert"' in denied.text
    with _session(site.server, "consultant") as http:
        members = http.get("/console/members")
        assert members.status_code == 200 and 'href="/console/layering"' not in members.text
        for path in ("", "/tags", "/tags/dormant", "/migration"):
            page = http.get(f"/console/layering{path}")
            assert page.status_code == 403, path
            assert page.headers["content-type"].startswith("text/html")
            assert "您的角色无权查看会员分层的汇总数据" in page.text
            assert "高价值" not in page.text and "consultant1" in page.text
        api_client = http.get("/console/layering", headers={"Accept": "application/json"})
        assert api_client.status_code == 403
        assert api_client.json()["error"]["code"] == "forbidden"


def test_english_switch(site: Site) -> None:
    with _session(site.server, "marketer") as http:
        page = http.get("/console/layering", params={"lang": "en"})
        assert page.status_code == 200 and "<title>Member layering · MeCDP</title>" in page.text
        for label in ("High value", "Potential", "Dormant", "Important value", "Due soon"):
            assert label in page.text
        assert "高价值" not in page.text and "Compute now" in page.text
        tags = http.get("/console/layering/tags")  # the language is remembered
        assert "Tag catalogue" in tags.text and 'data-testid="tag-link">Dormant<' in tags.text
        assert ">Lifecycle <" in tags.text and "On event" in tags.text
        back = http.get("/console/layering/migration", params={"lang": "zh-CN"})
        assert "分层迁移矩阵" in back.text


def test_tag_catalogue_by_category_with_member_counts(site: Site) -> None:
    with _session(site.server, "marketer") as http:
        page = http.get("/console/layering/tags")
    assert page.status_code == 200
    api = {t["tag_id"]: t for t in _api(site, "/v1/tags")}
    tables = _tables(page.text)
    shown: dict[str, tuple[str, list[str]]] = {}
    for testid, rows in tables.items():
        for attrs, cells in rows:
            if "data-tag" in attrs:
                shown[attrs["data-tag"]] = (testid.removeprefix("tags-"), cells)
    assert set(shown) == set(api)
    for tag_id, (category, cells) in shown.items():
        tag = api[tag_id]
        assert category == tag["category"]
        assert cells[0] == tag["name_zh"] and _count(cells[-1]) == tag["members"]
        assert cells[5] == f"v{tag['version']}"
    assert shown["dormant"][1][2:5] == ["是/否", "定时计算", "内置"]
    assert shown["new_customer"][1][3] == "实时（事件触发）"
    assert shown["value_tier"][1][2:5] == ["枚举", "定时计算", "系统计算"]
    assert ">生命周期 <" in page.text and ">价值 <" in page.text
    assert page.text.index(">价值 <") < page.text.index(">生命周期 <")


def test_tag_detail_definition_counts_history_and_members(site: Site) -> None:
    with _session(site.server, "marketer") as http:
        page = http.get("/console/layering/tags/dormant")
        tier = http.get("/console/layering/tags/value_tier")
        dormant_tier = http.get("/console/layering/tags/value_tier", params={"value": "dormant"})
        missing = http.get("/console/layering/tags/no_such_tag")
    assert page.status_code == 200
    text = page.text
    assert "<title>标签详情 沉睡 · MeCDP</title>" in text
    assert 'data-testid="tag-members">1<' in text
    # the lapsed member became 沉睡 in the LATE run (2025-06): this month's gains
    assert "本月新增（2025-06）" in text and 'data-testid="gained-month">1<' in text
    assert "kind: all\nrules:\n- kind: any" in text and "window_days: 180" in text
    lapsed = site.members.lapsed
    assert re.findall(r'href="/console/members/([^"]+)" data-testid="member-link"', text) == [
        lapsed
    ]
    history = _tables(text)["history"]
    assert [cells[1:4] for _, cells in history[1:]] == [[lapsed, "获得", "是"]]
    assert history[1][1][0] == "2025-06-30 08:00"
    # an enum tag: value counts with the layering.yaml labels, members of one value
    api = _api(site, "/v1/tags/value_tier")
    values = _tables(tier.text)["values"]
    assert [cells[0] for _, cells in values[1:]] == list(TIERS_ZH.values())
    assert _column_by_value(values, 1) == {v: api["values"].get(v, 0) for v in TIERS_ZH}
    listed = re.findall(r'data-testid="member-link">([^<]+)<', dormant_tier.text)
    expected = _api(site, "/v1/tags/value_tier/members", value="dormant")["members"]
    assert listed == [m["one_id"] for m in expected] and listed
    assert missing.status_code == 404 and "no_such_tag" in missing.text


def _matrix(page: str) -> dict[tuple[str, str], int]:
    rows = _tables(page)["matrix"]
    columns = [c for c in rows[0][1][1:-1]]
    found = {}
    for attrs, cells in rows[1:]:
        if "data-from" in attrs:
            for column, n in zip(columns, cells[1:-1], strict=True):
                found[(cells[0], column)] = _count(n)
    return found


def _api_migration(site: Site, tag: str) -> Any:
    """The API's matrix between the two runs."""
    params = {"start": EARLY.isoformat(), "end": LATE.isoformat(), "tag": tag}
    return _api(site, "/v1/layering/migration", **params)


def test_migration_matrix_between_the_first_and_the_latest_run(site: Site) -> None:
    with _session(site.server, "analyst") as http:
        page = http.get("/console/layering/migration")
        rfm = http.get(
            "/console/layering/migration",
            params={"tag": "rfm_segment", "start": "2024-07-01", "end": "2025-06-30"},
        )
        backwards = http.get(
            "/console/layering/migration", params={"start": "2025-06-30", "end": "2024-07-01"}
        )
        bad = http.get("/console/layering/migration", params={"start": "30/06/2025"})
    assert page.status_code == 200
    assert 'name="start" value="2024-07-01"' in page.text  # the first run, Shanghai date
    assert 'name="end" value="2025-06-30"' in page.text
    api = _api_migration(site, "value_tier")
    labels = {**TIERS_ZH, None: "未分层"}
    expected = {
        (labels[a], labels[b]): api["matrix"][i][j]
        for i, a in enumerate(api["values"])
        for j, b in enumerate(api["values"])
    }
    assert _matrix(page.text) == expected and sum(expected.values()) == api["total"]
    assert f'data-testid="matrix-total">{api["total"]}<' in page.text
    assert "其中 {} 人分层发生变化".format(api["moved"]) in page.text
    rfm_api = _api_migration(site, "rfm_segment")
    assert rfm.status_code == 200 and sum(_matrix(rfm.text).values()) == rfm_api["total"]
    assert backwards.status_code == 400 and "is after end" in backwards.text
    assert bad.status_code == 400 and "not a date" in bad.text


@pytest.mark.browser
def test_marketer_walks_through_the_layering_pages(
    site: Site, page: Any, chinese_font: None
) -> None:
    page.goto(site.server.url + "/console/layering")
    assert "/console/login" in page.url
    page.fill("input[name=username]", "marketer1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/layering")
    assert page.inner_text("[data-testid=nav-layering]") == "会员分层"
    tiers = _api(site, "/v1/tags/value_tier")["values"]
    for value, label in TIERS_ZH.items():
        row = page.locator(f"[data-testid=layer-value_tier] tr[data-value={value}]")
        assert row.locator("td").first.inner_text() == label
        assert _count(row.locator("[data-testid=count]").inner_text()) == tiers.get(value, 0)
    screenshot(page, "10-layering-overview")
    page.click("[data-testid=tab-tags]")
    page.click("tr[data-tag=dormant] [data-testid=tag-link]")
    page.wait_for_url("**/console/layering/tags/dormant")
    assert page.inner_text("[data-testid=tag-members]") == "1"
    assert page.inner_text("[data-testid=tag-member-list]") == site.members.lapsed
    screenshot(page, "11-layering-tag-dormant")
    page.click("[data-testid=tab-migration]")
    page.wait_for_url("**/console/layering/migration")
    assert "分层迁移矩阵" in page.inner_text("h1")
    matrix = page.locator("[data-testid=matrix]")
    assert "休眠" in matrix.inner_text()
    assert _count(page.inner_text("[data-testid=matrix-total]")) > 0
    page.select_option("[data-testid=migration-tag]", "rfm_segment")
    page.click("[data-testid=migration-submit]")
    page.wait_for_url("**tag=rfm_segment**")
    assert "重要价值" in page.inner_text("[data-testid=matrix]")
    screenshot(page, "12-layering-migration")


# Last in the module: it adds a run as of now to the shared site (the tests above read the
# state as of LATE; pytest runs a module's tests in the order written).
def test_compute_button_runs_the_layering(site: Site) -> None:
    with _session(site.server, "marketer") as http:
        before = http.get("/console/layering")
        token = re.search(r'name="token" value="(\w+)"', before.text)
        assert token
        forged = http.post("/console/layering/compute", data={"token": "0" * 64})
        assert forged.status_code == 400 and "表单已失效" in forged.text
        done = http.post("/console/layering/compute", data={"token": token.group(1)})
        assert done.status_code == 303
        run_id = done.headers["location"].split("computed=")[1]
        after = http.get(done.headers["location"])
    assert "计算完成" in after.text and run_id in after.text
    assert f'data-testid="run-members">{PERSONS}<' in after.text
    assert 'data-testid="run-as-of">2025-06-30' not in after.text  # as of now
    runs = _api(site, "/v1/compute/runs")
    assert runs[0]["run_id"] == run_id and len(runs) == 3
    # the 玻尿酸 treatment of 2025-03-01 (270-day cycle) is overdue by now
    overdue = _api(site, "/v1/tags/treatment_overdue")["members"]
    assert overdue == 1
    assert (
        f'<span class="stat-label">已过期</span><span class="stat-value">{overdue}<' in after.text
    )

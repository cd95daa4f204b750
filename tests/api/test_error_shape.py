"""Every error answers in one JSON shape: {"error": {"code", "message", ...}}."""

from __future__ import annotations

import httpx
from servers import RunningServer


def _assert_shape(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_error_shape_for_each_kind_of_failure(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        _assert_shape(http.get("/no/such/route"), 404, "not_found")
        _assert_shape(http.get("/v1/admin/sources"), 401, "unauthorized")
        wrong = http.get("/v1/admin/sources", headers={"Authorization": "Bearer nope"})
        _assert_shape(wrong, 401, "unauthorized")
        headers = server.admin_headers()
        missing = http.post("/v1/admin/sources", json={"name": "web"}, headers=headers)
        error = _assert_shape(missing, 400, "invalid_input")
        assert error["field"] == "channel"
        bad = http.post(
            "/v1/admin/sources", json={"name": "web", "channel": "fax"}, headers=headers
        )
        error = _assert_shape(bad, 400, "invalid_input")
        assert error["field"] == "channel" and error["value"] == "fax"
        ok = http.post("/v1/admin/sources", json={"name": "web", "channel": "web"}, headers=headers)
        assert ok.status_code == 201 and ok.json()["write_key"].startswith("wk_")
        _assert_shape(
            http.post("/v1/admin/sources", json={"name": "web", "channel": "web"}, headers=headers),
            409,
            "conflict",
        )


def test_index_page_lists_sources_in_chinese(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post(
            "/v1/admin/sources",
            json={"name": "douyin_leads", "channel": "douyin", "kind": "interactions"},
            headers=server.admin_headers(),
        )
        page = http.get("/")
    assert page.status_code == 200
    assert "数据源" in page.text and "douyin_leads" in page.text

"""Profile API on a real server: masking per role, audited unmasked reads, store scope,
paging, tags/scores/treatment due dates (gated by role, purpose and consent), the one error
shape, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from profiles.conftest import PHONE, seed_profile_workspace
from servers import PrivacyFixture, RunningServer, start_server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, PrivacyFixture, str]]:
    workspace = tmp_path_factory.mktemp("profiles") / "ws"
    fixture, one_id = seed_profile_workspace(workspace)
    with start_server(workspace) as running:
        yield running, fixture, one_id


def _as(fixture: PrivacyFixture, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fixture.api_keys[role]}"}


def _audit_count(http: httpx.Client, server: RunningServer) -> int:
    rows = http.get(
        "/v1/audit",
        params={"action": "personal_data.read_unmasked", "limit": 1000},
        headers=server.admin_headers(),
    ).json()
    return len(rows)


def test_masking_changes_with_role_and_unmasked_reads_are_audited(
    server: tuple[RunningServer, PrivacyFixture, str],
) -> None:
    running, fixture, one_id = server
    with httpx.Client(base_url=running.url, timeout=30) as http:
        before = _audit_count(http, running)
        marketer = http.get(f"/v1/profiles/phone:{PHONE}", headers=_as(fixture, "marketer"))
        assert marketer.status_code == 200, marketer.text
        body = marketer.json()
        assert body["one_id"] == one_id and body["masked"] is True
        assert body["identity"]["phone"] == "139****4586"
        # a marketer asking for the service purpose still gets masked data
        still = http.get(
            f"/v1/profiles/{one_id}",
            params={"purpose": "service"},
            headers=_as(fixture, "marketer"),
        )
        assert still.json()["identity"]["phone"] == "139****4586"
        assert _audit_count(http, running) == before
        consultant = http.get(
            f"/v1/profiles/{one_id}",
            params={"purpose": "service", "timeline": 4},
            headers=_as(fixture, "consultant"),
        )
        assert consultant.status_code == 200, consultant.text
        view = consultant.json()
        assert view["identity"]["phone"] == PHONE and view["identity"]["name"] == "张小雅"
        assert len(view["timeline"]["items"]) == 4
        assert _audit_count(http, running) == before + 1


def test_timeline_pages_and_filters(server: tuple[RunningServer, PrivacyFixture, str]) -> None:
    running, fixture, one_id = server
    with httpx.Client(base_url=running.url, timeout=30) as http:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"size": 4}
            if cursor:
                params["cursor"] = cursor
            page = http.get(
                f"/v1/profiles/{one_id}/timeline", params=params, headers=_as(fixture, "analyst")
            ).json()
            seen += [i["record_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 9
        orders = http.get(
            "/v1/profiles/member_no:M0001/timeline",
            params={"kind": "order"},
            headers=_as(fixture, "analyst"),
        ).json()
        assert {i["kind"] for i in orders["items"]} == {"order"}


def test_errors_use_the_one_shape(server: tuple[RunningServer, PrivacyFixture, str]) -> None:
    running, fixture, one_id = server
    with httpx.Client(base_url=running.url, timeout=30) as http:
        missing = http.get("/v1/profiles/phone:13900000001", headers=_as(fixture, "marketer"))
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        bad = http.get("/v1/profiles/nonsense", headers=_as(fixture, "marketer"))
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "ref"
        purpose = http.get(
            f"/v1/profiles/{one_id}",
            params={"purpose": "curiosity"},
            headers=_as(fixture, "consultant"),
        )
        assert purpose.status_code == 400 and purpose.json()["error"]["field"] == "purpose"
        cursor = http.get(
            f"/v1/profiles/{one_id}/timeline",
            params={"cursor": "x"},
            headers=_as(fixture, "marketer"),
        )
        assert cursor.status_code == 400 and cursor.json()["error"]["field"] == "cursor"
        anonymous = http.get(f"/v1/profiles/{one_id}")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"


def test_search_is_masked_and_documented(
    server: tuple[RunningServer, PrivacyFixture, str],
) -> None:
    running, fixture, one_id = server
    with httpx.Client(base_url=running.url, timeout=30) as http:
        hits = http.get(
            "/v1/profiles/search", params={"q": "139 7123 4586"}, headers=_as(fixture, "consultant")
        ).json()
        assert [(h["one_id"], h["phone"]) for h in hits] == [(one_id, "139****4586")]
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/v1/profiles/{ref}", "/v1/profiles/{ref}/timeline", "/v1/profiles/search"} <= set(
            paths
        )
        assert not any(p.startswith("/console") for p in paths)


def test_consultant_of_another_store_is_refused_unmasked_data(
    tmp_path: Path, server: tuple[RunningServer, PrivacyFixture, str]
) -> None:
    running, fixture, one_id = server
    with httpx.Client(base_url=running.url, timeout=30) as http:
        created = http.post(
            "/v1/api-keys",
            json={"name": "bj consultant", "role": "consultant", "store_code": "BJ01"},
            headers=running.admin_headers(),
        )
        assert created.status_code in (200, 201), created.text
        key = created.json()["api_key"]
        refused = http.get(
            f"/v1/profiles/{one_id}",
            params={"purpose": "service"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        masked = http.get(f"/v1/profiles/{one_id}", headers={"Authorization": f"Bearer {key}"})
        assert masked.json()["identity"]["phone"] == "139****4586"


def test_tags_and_scores_for_every_reader_due_dates_only_with_role_and_consent(
    server: tuple[RunningServer, PrivacyFixture, str],
) -> None:
    running, fixture, one_id = server
    with httpx.Client(base_url=running.url, timeout=30) as http:
        marketer = http.get(f"/v1/profiles/{one_id}", headers=_as(fixture, "marketer")).json()
        assert [(t["tag_id"], t["name_zh"], t["value"]) for t in marketer["tags"]] == [
            ("dormant", "沉睡", "true"),
            ("value_tier", "价值分层", "high_value"),
        ]
        assert marketer["tags"][0]["since"] == "2025-05-01T02:00:00Z"
        scores = marketer["scores"]
        assert (scores["rfm_segment"], scores["value_tier"], scores["clv_12m_fen"]) == (
            "important_retain",
            "high_value",
            260000.25,
        )
        assert marketer["treatment_due"] is None  # no role for medical data
        service_read = {"purpose": "service"}
        consultant = _as(fixture, "consultant")
        before = http.get(f"/v1/profiles/{one_id}", params=service_read, headers=consultant)
        assert before.json()["treatment_due"] is None  # no separate consent yet
        granted = http.post(
            "/v1/consents",
            json={
                "member_ref": f"one_id:{one_id}",
                "purpose": "sensitive_medical_processing",
                "status": "granted",
                "notice_version": "v1",
                "notice_text": "我同意处理我的医疗信息",
                "source": "in_store_form",
                "evidence": "form-9",
            },
            headers=_as(fixture, "compliance"),
        )
        assert granted.status_code == 201, granted.text
        after = http.get(f"/v1/profiles/{one_id}", params=service_read, headers=consultant)
        due = after.json()["treatment_due"]  # the consent shows on the next read
        assert [(d["item_code"], d["due_on"], d["status"]) for d in due] == [
            ("HA01", "2025-01-05", "overdue"),
            ("BTX01", "2025-07-29", "upcoming"),
        ]
        assert [c["purpose"] for c in after.json()["consents"]] == ["sensitive_medical_processing"]
        # a tag derived from treatments shows where the due dates do
        assert "treatment_overdue" in {t["tag_id"] for t in after.json()["tags"]}
        audit = http.get(
            "/v1/audit",
            params={"action": "personal_data.read_unmasked", "limit": 1000},
            headers=running.admin_headers(),
        ).json()
        assert audit[0]["detail"] == {"sensitive_medical": True}  # newest first
        # a marketer still gets no due dates, consent or not
        again = http.get(f"/v1/profiles/{one_id}", headers=_as(fixture, "marketer")).json()
        assert again["treatment_due"] is None
        assert [t["tag_id"] for t in again["tags"]] == ["dormant", "value_tier"]
        schema = http.get("/openapi.json").json()["components"]["schemas"]["ProfilePublic"]
        assert {"tags", "scores", "treatment_due"} <= set(schema["properties"])

"""Layering API on a real server: two compute runs through POST /v1/compute (as of a year
apart), then tags with member counts, members, history, previews, saved definitions (audited),
a member's layering with treatment due dates gated by role, purpose and consent, the
migration matrix, runs and the schedule, and permission denials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from compute.layering_seed import EARLY, LATE, PERSONS, Members, seed_workspace
from servers import PrivacyFixture, RunningServer, start_server

from mecdp.api.layering import NO_MEDICAL_CONSENT, NO_MEDICAL_PURPOSE, NO_MEDICAL_ROLE

NO_SHOW_ONCE: dict[str, Any] = {
    "tag_id": "no_show_once",
    "name_zh": "爽约过",
    "name_en": "Missed a visit",
    "category": "service",
    "rule": {
        "kind": "aggregate",
        "fact": "appointments",
        "where": [{"column": "status", "op": "eq", "value": "no_show"}],
        "measure": "count",
        "op": "gte",
        "value": 1,
    },
}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, PrivacyFixture, Members, list[dict[str, Any]]]]:
    workspace = tmp_path_factory.mktemp("layering") / "ws"
    fixture, members = seed_workspace(workspace)
    with start_server(workspace) as running:
        reports = []
        with httpx.Client(base_url=running.url, timeout=120) as http:
            for as_of in (EARLY, LATE):
                response = http.post(
                    "/v1/compute",
                    json={"as_of": as_of.isoformat()},
                    headers=_as(fixture, "marketer"),
                )
                assert response.status_code == 200, response.text
                reports.append(response.json())
        yield running, fixture, members, reports


Site = tuple[RunningServer, PrivacyFixture, Members, list[dict[str, Any]]]


def _as(fixture: PrivacyFixture, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fixture.api_keys[role]}"}


def _client(running: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=running.url, timeout=120)


def test_compute_runs_are_reported_and_listed(site: Site) -> None:
    running, fixture, _, reports = site
    early, late = reports
    assert early["as_of"] == EARLY.isoformat() and late["as_of"] == LATE.isoformat()
    for report in reports:
        assert report["members"] == report["scores"] == PERSONS
        assert report["tagged"] > PERSONS  # every member holds at least a tier
        assert set(report["stages"]) >= {"facts", "tags", "rfm", "clv", "scores", "persist"}
    assert early["tag_changes"] == early["tagged"]  # first run: every tag is gained
    with _client(running) as http:
        runs = http.get("/v1/compute/runs", headers=_as(fixture, "analyst")).json()
        mine = [r for r in runs if r["run_id"] in {early["run_id"], late["run_id"]}]
        assert [r["as_of"] for r in mine] == [LATE.isoformat(), EARLY.isoformat()]
        assert {r["status"] for r in mine} == {"done"}
        assert all(r["members"] == PERSONS and "rfm" in r["stages"] for r in mine)
        one = http.get(f"/v1/compute/runs/{late['run_id']}", headers=_as(fixture, "analyst"))
        cutoffs = one.json()["parameters"]["rfm"]["cutoffs"]
        assert {c["metric"] for c in cutoffs} == {"recency_days", "frequency", "monetary_fen"}
        schedule = http.get("/v1/compute/schedule", headers=_as(fixture, "analyst")).json()
        assert schedule["schedule"] == "daily@03:00" and schedule["active"] is True
        assert schedule["next_run_local"].endswith("03:00:00+08:00")
        assert schedule["runs_done"] >= 2 and schedule["last_run"]["trigger"] == "api"
        missing = http.get("/v1/compute/runs/nope", headers=_as(fixture, "analyst"))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_tags_list_counts_members(site: Site) -> None:
    running, fixture, members, _ = site
    with _client(running) as http:
        tags = {
            t["tag_id"]: t for t in http.get("/v1/tags", headers=_as(fixture, "analyst")).json()
        }
        dormant = tags["dormant"]
        assert (dormant["name_zh"], dormant["origin"], dormant["members"]) == ("沉睡", "shipped", 1)
        assert dormant["values"] is None and dormant["rule"]["kind"]
        tier = tags["value_tier"]
        assert tier["origin"] == "system" and tier["value_type"] == "enum"
        assert tier["members"] == PERSONS == sum(tier["values"].values())
        assert tier["value_labels"]["dormant"]["zh"] == "休眠"
        assert tags["frequent_no_show"]["members"] == 1
        one = http.get("/v1/tags/frequent_visitor", headers=_as(fixture, "marketer")).json()
        assert one["members"] == 1 and one["name_zh"] == "高频到店用户"
        missing = http.get("/v1/tags/no_such_tag", headers=_as(fixture, "marketer"))
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "tag_id"
    assert members.lapsed  # the dormant one, checked by name below


def test_tag_members_and_history(site: Site) -> None:
    running, fixture, members, reports = site
    with _client(running) as http:
        dormant = http.get("/v1/tags/dormant/members", headers=_as(fixture, "consultant")).json()
        assert dormant["total"] == 1
        assert dormant["members"] == [{"one_id": members.lapsed, "value": "true"}]
        tier = http.get(
            "/v1/tags/value_tier/members",
            params={"value": "dormant", "limit": 1},
            headers=_as(fixture, "analyst"),
        ).json()
        assert tier["total"] >= 1 and len(tier["members"]) == 1
        # "who became 沉睡 this year": gained as of the second run
        became = http.get(
            "/v1/tags/dormant/history",
            params={"change": "gained", "since": "2025-01-01"},
            headers=_as(fixture, "analyst"),
        ).json()
        assert [(i["one_id"], i["run_id"]) for i in became["items"]] == [
            (members.lapsed, reports[1]["run_id"])
        ]
        assert became["items"][0]["changed_at"] == LATE.isoformat()
        before = http.get(
            "/v1/tags/dormant/history",
            params={"change": "gained", "until": "2025-01-01"},
            headers=_as(fixture, "analyst"),
        ).json()
        assert before["total"] == 0
        lost = http.get(
            "/v1/tags/new_customer/history",
            params={"change": "lost"},
            headers=_as(fixture, "analyst"),
        ).json()
        assert [(i["one_id"], i["previous_value"]) for i in lost["items"]] == [
            (members.lapsed, "true")
        ]
        moved = http.get(
            "/v1/tags/value_tier/history",
            params={"value": "dormant", "since": "2025-06-30T08:00:00+08:00"},
            headers=_as(fixture, "analyst"),
        ).json()  # +08:00 is read as 00:00 UTC, the second run's as_of
        assert members.lapsed in {i["one_id"] for i in moved["items"]}
        bad = http.get(
            "/v1/tags/dormant/history",
            params={"change": "sideways"},
            headers=_as(fixture, "analyst"),
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "query.change"


def test_migration_matrix_between_the_two_runs(site: Site) -> None:
    running, fixture, members, _ = site
    with _client(running) as http:
        found = http.get(
            "/v1/layering/migration",
            params={"start": EARLY.isoformat(), "end": LATE.isoformat()},
            headers=_as(fixture, "analyst"),
        ).json()
        assert found["tag_id"] == "value_tier" and found["total"] == PERSONS
        assert found["values"][:3] == ["high_value", "potential", "dormant"]
        assert found["values"][-1] is None
        assert sum(found["row_totals"]) == sum(found["column_totals"]) == PERSONS
        tier = http.get("/v1/tags/value_tier", headers=_as(fixture, "analyst")).json()
        now = dict(zip(found["values"], found["column_totals"], strict=True))
        assert {v: n for v, n in now.items() if n} == tier["values"]
        assert found["moved"] >= 1  # the lapsed member went dormant
        dormant = found["values"].index("dormant")
        assert found["column_totals"][dormant] >= 1
        wrong_way = http.get(
            "/v1/layering/migration",
            params={"start": LATE.isoformat(), "end": EARLY.isoformat()},
            headers=_as(fixture, "analyst"),
        )
        assert wrong_way.status_code == 400 and wrong_way.json()["error"]["field"] == "start"
        denied = http.get(
            "/v1/layering/migration",
            params={"start": EARLY.isoformat(), "end": LATE.isoformat()},
            headers=_as(fixture, "consultant"),
        )
        assert denied.status_code == 403
    assert members.frequent


def test_preview_save_and_delete_a_definition(site: Site) -> None:
    running, fixture, members, _ = site
    marketer = _as(fixture, "marketer")
    with _client(running) as http:
        preview = http.post(
            "/v1/tags/preview",
            params={"as_of": LATE.isoformat()},
            json=NO_SHOW_ONCE,
            headers=marketer,
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["count"] == 1 and preview.json()["sample"] == [members.frequent]
        earlier = http.post(
            "/v1/tags/preview", params={"as_of": "2025-02-01"}, json=NO_SHOW_ONCE, headers=marketer
        ).json()
        assert earlier["count"] == 0  # the first no-show is on 2025-02-10
        assert http.get("/v1/tags/no_show_once", headers=marketer).status_code == 404  # unsaved

        bad_rule = {**NO_SHOW_ONCE, "rule": {**NO_SHOW_ONCE["rule"], "measure": "sum:colour"}}
        refused = http.put("/v1/tags/no_show_once", json=bad_rule, headers=marketer)
        assert refused.status_code == 400
        assert refused.json()["error"]["field"].startswith("rule")
        assert "colour" in refused.json()["error"]["message"]

        saved = http.put("/v1/tags/no_show_once", json=NO_SHOW_ONCE, headers=marketer)
        assert saved.status_code == 200, saved.text
        body = saved.json()
        assert (body["origin"], body["version"], body["members"]) == ("api", 1, 0)
        assert body["updated_by"] and body["enabled"] is True
        stricter = {**NO_SHOW_ONCE, "rule": {**NO_SHOW_ONCE["rule"], "value": 3}}
        again = http.put("/v1/tags/no_show_once", json=stricter, headers=marketer).json()
        assert again["version"] == 2 and again["rule"]["value"] == 3

        mismatch = http.put("/v1/tags/other_key", json=NO_SHOW_ONCE, headers=marketer)
        assert mismatch.status_code == 400 and mismatch.json()["error"]["field"] == "tag_id"
        system = {**NO_SHOW_ONCE, "tag_id": "value_tier"}
        locked = http.put("/v1/tags/value_tier", json=system, headers=marketer)
        assert locked.status_code == 400 and locked.json()["error"]["field"] == "tag_id"
        shipped = http.delete("/v1/tags/dormant", headers=marketer)
        assert shipped.status_code == 400 and "disable" in shipped.json()["error"]["message"]

        deleted = http.delete("/v1/tags/no_show_once", headers=marketer)
        assert deleted.status_code == 200 and deleted.json() == {"deleted": "no_show_once"}
        assert http.get("/v1/tags/no_show_once", headers=marketer).status_code == 404

        audit = http.get(
            "/v1/audit", params={"limit": 1000}, headers=running.admin_headers()
        ).json()
        changes = [
            (a["action"], a["target"], a["actor_role"])
            for a in audit
            if a["action"].startswith("tag.")
        ]
        assert changes == [  # newest first
            ("tag.deleted", "tag:no_show_once", "marketer"),
            ("tag.saved", "tag:no_show_once", "marketer"),
            ("tag.saved", "tag:no_show_once", "marketer"),
        ]


def test_a_saved_tag_gets_members_at_the_next_run(site: Site) -> None:
    running, fixture, members, _ = site
    marketer = _as(fixture, "marketer")
    definition = {**NO_SHOW_ONCE, "tag_id": "no_show_any"}
    with _client(running) as http:
        assert (
            http.put("/v1/tags/no_show_any", json=definition, headers=marketer).status_code == 200
        )
        run = http.post("/v1/compute", json={"as_of": LATE.isoformat()}, headers=marketer)
        assert run.status_code == 200, run.text
        assert run.json()["parameters"]["tags"]["no_show_any"] == 1  # its rule version
        found = http.get("/v1/tags/no_show_any/members", headers=marketer).json()
        assert [m["one_id"] for m in found["members"]] == [members.frequent]


def test_member_layering_and_treatment_due_gating(site: Site) -> None:
    running, fixture, members, _ = site
    with _client(running) as http:

        def audits() -> int:
            rows = http.get(
                "/v1/audit",
                params={"action": "personal_data.read_unmasked", "limit": 1000},
                headers=running.admin_headers(),
            ).json()
            return len(rows)

        frequent = http.get(
            f"/v1/layering/members/{members.frequent}", headers=_as(fixture, "marketer")
        )
        assert frequent.status_code == 200, frequent.text
        body = frequent.json()
        assert body["scores"]["frequency"] == 1 and body["scores"]["monetary_fen"] == 300000
        held = {t["tag_id"]: t for t in body["tags"]}
        assert {"frequent_visitor", "frequent_no_show", "new_customer"} <= set(held)
        assert held["frequent_visitor"]["name_zh"] == "高频到店用户"
        explained = {m["metric"]: m for m in body["rfm_explanation"]["metrics"]}
        assert explained["monetary_fen"]["value"] == 300000
        assert explained["recency_days"]["score"] == body["scores"]["r_score"]
        assert body["run"]["as_of"] == LATE.isoformat()
        assert body["treatment_due"] is None and body["treatment_due_note"] == NO_MEDICAL_ROLE

        before = audits()
        consultant = _as(fixture, "consultant")  # serves SH01, the members' home store
        no_purpose = http.get(f"/v1/layering/members/{members.treated}", headers=consultant)
        assert no_purpose.json()["treatment_due"] is None
        assert no_purpose.json()["treatment_due_note"] == NO_MEDICAL_PURPOSE
        no_consent = http.get(
            f"/v1/layering/members/{members.frequent}",
            params={"purpose": "service"},
            headers=consultant,
        ).json()
        assert no_consent["treatment_due"] is None
        assert no_consent["treatment_due_note"] == NO_MEDICAL_CONSENT
        treated = http.get(
            f"/v1/layering/members/{members.treated}",
            params={"purpose": "service"},
            headers=consultant,
        ).json()
        assert treated["treatment_due_note"] is None
        (due,) = treated["treatment_due"]
        assert (due["item_code"], due["last_performed_at"]) == ("HA01", "2025-03-01T11:00:00")
        assert due["status"] in {"upcoming", "overdue", "not_due"} and due["cycle_days"] > 0
        assert audits() == before + 1  # only the read that showed due dates

        analyst = http.get(
            f"/v1/layering/members/{members.treated}",
            params={"purpose": "service"},
            headers=_as(fixture, "analyst"),
        ).json()
        assert analyst["treatment_due"] is None and analyst["treatment_due_note"] == NO_MEDICAL_ROLE
        missing = http.get("/v1/layering/members/OID99999999", headers=_as(fixture, "analyst"))
        assert missing.status_code == 404


def test_roles_without_the_permission_are_refused(site: Site) -> None:
    running, fixture, _, _ = site
    with _client(running) as http:
        for method, path, role, body in (
            ("GET", "/v1/tags", "consultant", None),
            ("PUT", "/v1/tags/no_show_once", "analyst", NO_SHOW_ONCE),
            ("POST", "/v1/tags/preview", "analyst", NO_SHOW_ONCE),
            ("DELETE", "/v1/tags/dormant", "compliance", None),
            ("POST", "/v1/compute", "analyst", {}),
            ("GET", "/v1/compute/runs", "compliance", None),
            ("GET", "/v1/compute/schedule", "consultant", None),
        ):
            response = http.request(method, path, json=body, headers=_as(fixture, role))
            assert response.status_code == 403, (method, path, role, response.text)
            assert response.json()["error"]["code"] == "forbidden"
        anonymous = http.get("/v1/tags/dormant/members")
        assert anonymous.status_code == 401

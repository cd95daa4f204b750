"""`mecdp compute` and `mecdp tags ...` as a user runs them: on the store directly, then
through a running server (which owns the store then) with the same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compute.layering_seed import EARLY, LATE, MEMBERS, Members, seed_members
from servers import run_cli, start_server

from mecdp.config import Settings, init_workspace
from mecdp.store import open_store

PREVIEW_YAML = """\
tags:
  - tag_id: no_show_once
    name_zh: 爽约过
    name_en: Missed a visit
    category: service
    rule:
      kind: aggregate
      fact: appointments
      where:
        - {column: status, op: eq, value: no_show}
      measure: count
      op: gte
      value: 1
  - tag_id: spent_over_60
    name_zh: 消费超过 60 元
    name_en: Spent over 60 yuan
    category: value
    rule: {kind: aggregate, fact: orders, measure: "sum:paid_fen", op: gt, value: 6000}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Members]]:
    path = tmp_path_factory.mktemp("cli") / "ws"
    settings = Settings(workspace=path)
    init_workspace(settings)
    store = open_store(settings.db_path)
    try:
        members = seed_members(store)
    finally:
        store.close()
    yield path, members


def _ok(workspace: Path, *args: str) -> str:
    result = run_cli(workspace, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _json(workspace: Path, *args: str) -> Any:
    return json.loads(_ok(workspace, *args, "--json"))


def test_compute_and_tags_on_the_store(workspace: tuple[Path, Members], tmp_path: Path) -> None:
    path, members = workspace
    early = _json(path, "compute", "--as-of", EARLY.date().isoformat())
    assert early["as_of"] == EARLY.isoformat() and early["members"] == MEMBERS
    assert early["tag_changes"] == early["tagged"] > 0
    summary = _ok(path, "compute", "--as-of", LATE.date().isoformat())
    assert f"Member layering as of {LATE.isoformat()} (duckdb)" in summary
    for line in ("members", "tag changes", "treatment due dates", "seconds: facts"):
        assert line in summary
    assert "CLV not fitted this run" in summary  # 3 members are too few to fit

    listed = _ok(path, "tags", "list")
    assert "dormant" in listed and "沉睡" in listed and "value_tier" in listed
    shown = _ok(path, "tags", "show", "dormant")
    assert "沉睡 / Dormant" in shown and "members now: 1" in shown and "kind:" in shown

    dormant = _json(path, "tags", "members", "dormant")
    assert dormant["members"] == [{"one_id": members.lapsed, "value": "true"}]
    became = _json(
        path, "tags", "history", "dormant", "--change", "gained", "--since", "2025-01-01"
    )
    assert [(i["one_id"], i["changed_at"]) for i in became["items"]] == [
        (members.lapsed, LATE.isoformat())
    ]

    definitions = tmp_path / "preview.yaml"
    definitions.write_text(PREVIEW_YAML, encoding="utf-8")
    previews = _json(path, "tags", "preview", str(definitions), "--as-of", "2025-06-30")
    assert [(p["tag_id"], p["count"]) for p in previews] == [
        ("no_show_once", 1),
        ("spent_over_60", MEMBERS),
    ]
    assert previews[0]["sample"] == [members.frequent]

    matrix = _ok(path, "tags", "migration", "--start", "2024-07-01", "--end", "2025-06-30")
    assert "value_tier" in matrix and "休眠" in matrix and f"{MEMBERS} members" in matrix


def test_bad_input_exits_2_naming_the_field(
    workspace: tuple[Path, Members], tmp_path: Path
) -> None:
    path, _ = workspace
    for args, words in (
        (("tags", "history", "dormant", "--change", "sideways"), "change"),
        (("compute", "--as-of", "yesterday"), "as_of"),
    ):
        result = run_cli(path, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert words in result.stderr, (args, result.stderr)
    broken = tmp_path / "broken.yaml"
    broken.write_text(PREVIEW_YAML.replace("measure: count", "measure: tally"), encoding="utf-8")
    result = run_cli(path, "tags", "preview", str(broken))
    assert result.returncode == 2 and "no_show_once" in result.stderr and "measure" in result.stderr


def test_the_same_answers_through_a_running_server(workspace: tuple[Path, Members]) -> None:
    path, _ = workspace
    local_members = _json(path, "tags", "members", "value_tier")
    local_matrix = _json(path, "tags", "migration", "--start", "2024-07-01", "--end", "2025-06-30")
    with start_server(path) as server:
        # the server owns the store now: these succeed only by going through it
        report = _json(path, "compute", "--as-of", "2025-06-30")
        assert report["members"] == MEMBERS and report["tag_changes"] == 0  # nothing changed
        assert _json(path, "tags", "members", "value_tier") == local_members
        assert _json(path, "tags", "migration", "--start", "2024-07-01", "--end", "2025-06-30") == (
            local_matrix
        )
        shown = _json(path, "tags", "show", "frequent_visitor")
        assert shown["members"] == 1 and shown["origin"] == "shipped"
        missing = run_cli(path, "tags", "members", "no_such_tag")
        assert missing.returncode == 2 and "no_such_tag" in missing.stderr
        assert server.process.poll() is None

"""Tag definitions: validation errors that name the tag, field and reason; workspace files
that add, replace and disable tags; the rule fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compute.test_tag_factories import Clinic, ago, tag_rows

from mecdp.compute import tags
from mecdp.errors import InputError


def _data(rule: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "tag_id": "my_tag",
        "name_zh": "我的标签",
        "name_en": "My tag",
        "category": "test",
        "rule": rule,
        **fields,
    }


ORDERS = {"kind": "aggregate", "fact": "orders", "measure": "count", "op": "gte", "value": 1}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_data({"kind": "magic"}), ["rule", "magic", "trait", "sql"]),
        (_data({**ORDERS, "op": "about"}), ["rule.aggregate.op", "about"]),
        (
            _data({**ORDERS, "where": [{"column": "colour", "op": "eq", "value": "red"}]}),
            ["where[0].column", "unknown column 'colour' of orders", "paid_fen"],
        ),
        (
            _data({"kind": "trait", "conditions": [{"column": "shoe_size", "value": 3}]}),
            ["conditions.0", "unknown column 'shoe_size' of members"],
        ),
        (
            _data({**ORDERS, "where": [{"column": "promo", "op": "eq", "value": "yes"}]}),
            ["where[0]", "'yes' is not true or false"],
        ),
        (
            _data({**ORDERS, "where": [{"column": "category", "op": "in", "value": "注射"}]}),
            ["op in needs a non-empty list"],
        ),
        (_data({**ORDERS, "measure": "median:paid_fen"}), ["measure 'median:paid_fen'"]),
        (_data({**ORDERS, "measure": "sum:channel"}), ["measure 'sum:channel' needs a number"]),
        (_data(ORDERS, value_type="number"), ["value_type 'number' does not fit"]),
        (
            _data({"kind": "not", "rule": {"kind": "sql", "sql": "SELECT one_id FROM cm_members"}}),
            ["a sql rule cannot be combined"],
        ),
        (
            _data({"kind": "any", "rules": [{**ORDERS, "op": None, "value": None}]}),
            ["rules[0]", "needs op/value"],
        ),
        (
            _data({"kind": "share", "fact": "appointments", "of": "spend", "where": [
                {"column": "status", "op": "eq", "value": "arrived"}]}),
            ["of: spend needs fact: orders"],
        ),
        (
            _data({"kind": "sql", "sql": "DROP TABLE scores"}),
            ["expert SQL: only a SELECT query is allowed, not DROP"],
        ),
        (_data(ORDERS, tag_id="My Tag"), ["tag_id", "pattern"]),
        (_data(ORDERS, refresh="hourly"), ["refresh", "event", "scheduled", "manual"]),
        (_data({"kind": "trait", "conditions": [{"helper": "days_since", "column": "city",
                                                 "op": "lte", "value": 3}]}),
         ["days_since needs a date or time column"]),
    ],
)  # fmt: skip
def test_bad_definitions_name_the_tag_field_and_reason(
    data: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(InputError) as caught:
        tags.parse_definition(data, source="api")
    message = str(caught.value)
    assert message.startswith(f"api: tag {data['tag_id']!r}: ")
    for word in words:
        assert word in message


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_workspace_files_replace_add_and_disable_tags(tmp_path: Path) -> None:
    _write(
        tmp_path / "tags",
        "10-lifecycle.yaml",
        """
tags:
  - {tag_id: low_engagement, enabled: false}
  - tag_id: dormant
    name_zh: 沉睡
    name_en: Dormant (90 days)
    category: lifecycle
    rule: {kind: aggregate, fact: orders, measure: days_since_last, op: gt, value: 90}
  - tag_id: big_spender
    name_zh: 高消费
    name_en: Big spender
    category: value
    rule: {kind: aggregate, fact: orders, measure: "sum:paid_fen", op: gte, value: 1000000}
""",
    )
    _write(tmp_path / "tags", "20-names.yaml", "tags:\n  - {tag_id: dormant, name_zh: 沉睡客}\n")
    shipped = {d.tag_id: d for d in tags.load_definitions(None)}
    found = {d.tag_id: d for d in tags.load_definitions(tmp_path)}
    assert set(found) == set(shipped) | {"big_spender"}
    assert found["low_engagement"].enabled is False
    assert found["low_engagement"].rule == shipped["low_engagement"].rule
    assert found["dormant"].name_zh == "沉睡客"  # the later file patches the replaced tag
    assert found["dormant"].rule.kind == "aggregate"

    clinic = Clinic()
    clinic.order(clinic.member("m_quiet"), ago(100), 20000)
    clinic.member("m_never")
    rows = tag_rows(clinic.engine(), list(found.values()))
    assert rows["dormant"] == {"m_quiet": "true"}
    assert rows["big_spender"] == {"m_quiet": "true"}
    assert "low_engagement" not in rows  # disabled: no rows though both qualify
    assert tag_rows(clinic.engine(), list(shipped.values()))["low_engagement"] == {
        "m_quiet": "true",
        "m_never": "true",
    }


def test_a_bad_workspace_file_names_the_file_and_tag(tmp_path: Path) -> None:
    _write(
        tmp_path / "tags",
        "bad.yaml",
        "tags:\n  - tag_id: vip_plus\n    name_zh: 超级VIP\n    name_en: VIP+\n"
        "    category: value\n    rule: {kind: aggregate, fact: orders, measure: count,"
        " op: gte, value: 2, where: [{column: colour, value: red}]}\n",
    )
    with pytest.raises(InputError) as caught:
        tags.load_definitions(tmp_path)
    message = str(caught.value)
    assert "bad.yaml (tags[0])" in message and "'vip_plus'" in message
    assert "unknown column 'colour'" in message
    _write(tmp_path / "tags", "bad.yaml", "tags:\n  - {tag_id: a}\n  - {tag_id: a}\n")
    with pytest.raises(InputError, match="tag_id 'a' given twice"):
        tags.load_definitions(tmp_path)
    _write(tmp_path / "tags", "bad.yaml", "just: [a list\n")
    with pytest.raises(InputError, match="not valid YAML"):
        tags.load_definitions(tmp_path)


def test_rule_fingerprint_follows_the_rule_only() -> None:
    base = tags.parse_definition(_data(ORDERS))
    same = tags.parse_definition(_data({**ORDERS, "where": []}, name_zh="改名", owner="x"))
    changed = tags.parse_definition(_data({**ORDERS, "value": 2}))
    assert tags.rule_fingerprint(base) == tags.rule_fingerprint(same)  # defaults filled in
    assert tags.rule_fingerprint(base) != tags.rule_fingerprint(changed)
    again = {d.tag_id: tags.rule_fingerprint(d) for d in tags.load_definitions(None)}
    assert again == {d.tag_id: tags.rule_fingerprint(d) for d in tags.load_definitions(None)}
    assert len(set(again.values())) == len(again)


def test_definitions_round_trip_through_their_json() -> None:
    for d in tags.load_definitions(None):
        assert tags.parse_definition(d.model_dump(mode="json")) == d

"""Mappings: loading, validation errors that name file and key, header matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecdp.collect.mapping import list_mappings, load_mapping, normalize_header
from mecdp.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("header", "normalized"),
    [
        (" 手机号 ", "手机号"),
        ("手机号（主）", "手机号主"),
        ("【门店】", "门店"),
        ("Order_No", "orderno"),
        ("ＯＲＤＥＲ－ＮＯ", "orderno"),  # full-width
        ("下单时间:", "下单时间"),
        ("order no.", "orderno."),
    ],
)
def test_normalize_header(header: str, normalized: str) -> None:
    assert normalize_header(header) == normalized


def test_load_by_path_and_match_chinese_headers() -> None:
    mapping = load_mapping(FIXTURES / "clinic_orders.yaml")
    assert mapping.kind == "orders"
    headers = ["订单号", "手机号", "姓名", "消费金额", "项目", "门店", "到店时间", "备注"]
    match = mapping.match(headers)
    assert match.fields == {
        "order_no": 0,
        "phone": 1,
        "name": 2,
        "amount": 3,
        "item_name": 4,
        "store_code": 5,
        "ordered_at": 6,
    }
    assert match.unknown == [7]
    assert match.missing_required == []


def test_match_is_lenient_on_spelling_and_accepts_field_names() -> None:
    mapping = load_mapping(FIXTURES / "clinic_orders.yaml")
    match = mapping.match(["（订单号）", " 手机 ", "AMOUNT", "ordered_at", "customer_no"])
    assert match.fields == {
        "order_no": 0,
        "phone": 1,
        "amount": 2,
        "ordered_at": 3,
        "customer_no": 4,
    }


def test_earliest_alias_wins_when_two_headers_feed_one_field() -> None:
    mapping = load_mapping(FIXTURES / "clinic_orders.yaml")
    match = mapping.match(["手机", "手机号", "订单号", "金额", "下单时间"])
    assert match.fields["phone"] == 1
    assert 0 in match.unknown


def test_missing_required_fields_are_reported() -> None:
    mapping = load_mapping(FIXTURES / "clinic_orders.yaml")
    match = mapping.match(["订单号", "手机号"])
    assert match.missing_required == ["ordered_at", "amount"]


def test_a_default_satisfies_a_required_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "calls.yaml",
        "name: calls\nkind: interactions\nchannel: call_center\n"
        "defaults: {channel: call_center, type: call}\n"
        "columns:\n  occurred_at: [时间]\n",
    )
    assert load_mapping(path).match(["时间"]).missing_required == []


def test_workspace_mapping_shadows_shipped(tmp_path: Path) -> None:
    write(
        tmp_path / "mappings" / "pos_orders.yaml",
        "name: pos_orders\nkind: orders\ncolumns:\n  order_no: [票号]\n",
    )
    mapping = load_mapping("pos_orders", tmp_path)
    assert mapping.columns == {"order_no": ("票号",)}
    names = [m.name for m in list_mappings(tmp_path)]
    assert names.count("pos_orders") == 1
    assert [m for m in list_mappings(tmp_path) if m.name == "pos_orders"][0].columns == {
        "order_no": ("票号",)
    }


def test_shipped_mappings_load_by_name() -> None:
    shipped = list_mappings()
    assert shipped, "no shipped mappings found"
    for mapping in shipped:
        assert load_mapping(mapping.name).name == mapping.name


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: bad\nkind: nope\ncolumns: {order_no: [a]}\n", "kind"),
        ("name: bad\nkind: orders\ncolumns: {not_a_field: [a]}\n", "columns.not_a_field"),
        ("name: bad\nkind: orders\nmoney_unit: cents\ncolumns: {order_no: [a]}\n", "money_unit"),
        ("name: bad\nkind: orders\nchannel: fax\ncolumns: {order_no: [a]}\n", "channel"),
        ("name: bad\nkind: orders\ncolumns: {order_no: [a], phone: [a]}\n", "columns.phone"),
        ("name: other\nkind: orders\ncolumns: {order_no: [a]}\n", "name"),
        ("name: bad\nkind: orders\ncolor: red\ncolumns: {order_no: [a]}\n", "color"),
        (
            "name: bad\nkind: orders\ndefaults: {nope: 1}\ncolumns: {order_no: [a]}\n",
            "defaults.nope",
        ),
        ("name: bad\nkind: orders\n", "columns"),
    ],
)
def test_validation_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(InputError) as info:
        load_mapping(path)
    assert str(path) in info.value.message
    assert info.value.field == key
    assert f": {key}:" in info.value.message
    assert info.value.rule == "mapping.invalid"


def test_unknown_mapping_name() -> None:
    with pytest.raises(InputError, match="no mapping named 'nope'"):
        load_mapping("nope")

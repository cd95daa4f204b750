"""The shipped source mappings (mecdp/collect/mappings/*.yaml) are well formed."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from mecdp.clean.codes import CHANNELS
from mecdp.clean.kinds import RECORD_KINDS

MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "mecdp" / "collect" / "mappings"
MAPPING_FILES = sorted(MAPPINGS_DIR.glob("*.yaml"))
REQUIRED_MAPPINGS = {
    "pos_orders",
    "ecommerce_orders",
    "his_treatments",
    "his_appointments",
    "douyin_interactions",
    "xhs_interactions",
    "weibo_interactions",
    "wechat_interactions",
    "lead_forms",
    "call_center_logs",
    "chat_logs",
    "surveys",
    "third_party_list",
    "member_master",
}
_STRIPPED = re.compile(r"[\s()（）\[\]【】:：_\-]")


def normalise_header(header: str) -> str:
    """How the loader compares headers: trim, NFKC (full-width -> half-width), lower-case,
    no spaces or ()（）[]【】:：_- characters."""
    return _STRIPPED.sub("", unicodedata.normalize("NFKC", header).strip().lower())


def load(path: Path) -> dict[str, object]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def test_required_mappings_are_shipped() -> None:
    assert {p.stem for p in MAPPING_FILES} >= REQUIRED_MAPPINGS


@pytest.mark.parametrize("path", MAPPING_FILES, ids=lambda p: p.stem)
def test_mapping_is_well_formed(path: Path) -> None:
    m = load(path)
    assert set(m) <= {"name", "kind", "channel", "description", "money_unit", "defaults", "columns"}
    assert m["name"] == path.stem
    assert m["kind"] in RECORD_KINDS
    kind = RECORD_KINDS[str(m["kind"])]
    assert m["channel"] in CHANNELS
    assert m["money_unit"] in ("yuan", "fen")
    assert isinstance(m["description"], str) and m["description"]
    field_names = {f.name for f in kind.fields}

    defaults = m.get("defaults") or {}
    assert isinstance(defaults, dict)
    assert set(defaults) <= field_names
    if "channel" in defaults:
        assert defaults["channel"] in CHANNELS

    columns = m["columns"]
    assert isinstance(columns, dict) and columns
    unknown = set(columns) - field_names
    assert not unknown, f"not canonical fields of {kind.name}: {unknown}"

    owner: dict[str, str] = {}
    for field, headers in columns.items():
        assert isinstance(headers, list) and headers, field
        for header in headers:
            assert isinstance(header, str) and header.strip(), (field, header)
            key = normalise_header(header)
            assert key not in owner, f"{header!r} listed under {owner[key]} and {field}"
            owner[key] = field

    for required in kind.required:
        assert columns.get(required) or required in defaults, f"no header for {required}"


def test_common_chinese_headers_map_without_editing() -> None:
    expected = {
        "pos_orders": {
            "手机号": "phone",
            "姓名": "name",
            "消费金额": "amount",
            "项目": "item_name",
            "门店": "store_code",
            "性别": "gender",
            "生日": "birthday",
            "会员号": "member_no",
            "订单号": "order_no",
            "消费时间": "ordered_at",
        },
        "his_appointments": {
            "到店时间": "arrived_at",
            "手机号": "phone",
            "项目": "item_name",
            "门店": "store_code",
            "身份证号": "id_card",
        },
        "his_treatments": {"身份证号": "id_card", "会员号": "member_no", "项目": "item_name"},
        "ecommerce_orders": {
            "订单编号": "order_no",
            "买家手机": "phone",
            "实付金额": "paid",
            "下单时间": "ordered_at",
            "商品名称": "item_name",
        },
        "member_master": {"会员号": "member_no", "手机号": "phone", "生日": "birthday"},
    }
    for name, headers in expected.items():
        columns = load(MAPPINGS_DIR / f"{name}.yaml")["columns"]
        assert isinstance(columns, dict)
        lookup = {normalise_header(h): f for f, hs in columns.items() for h in hs}
        for header, field in headers.items():
            assert lookup.get(normalise_header(header)) == field, (name, header)

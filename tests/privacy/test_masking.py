"""Masking rules and who may see what unmasked."""

from __future__ import annotations

import pytest

from mecdp.privacy.masking import (
    mask_email,
    mask_generic,
    mask_id_card,
    mask_name,
    mask_phone,
    mask_record,
    reveals_personal_data,
)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+8613812345678", "138****5678"),
        ("13812345678", "138****5678"),
        ("138 1234 5678", "138****5678"),
        ("+14155550123", "*******0123"),
        ("123", "****"),
    ],
)
def test_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳娜娜", "欧阳**"),
        ("欧阳", "欧*"),
        ("王", "*"),
        ("Li Na", "Li N*"),
        ("John Ronald Smith", "John R* S*"),
        ("Madonna", "M*"),
    ],
)
def test_name(value: str, masked: str) -> None:
    assert mask_name(value) == masked


def test_email_id_card_generic() -> None:
    assert mask_email("zhangsan@qq.com") == "z***@qq.com"
    assert mask_id_card("11010119900101123x") == "1101**********123X"
    assert mask_generic("oABCDEFGHz") == "o***z"
    assert mask_generic("abc") == "***"


RECORD = {
    "record_id": "r1",
    "name": "欧阳娜娜",
    "phone": "+8613812345678",
    "email": "nana@163.com",
    "id_card": "11010119900101123X",
    "wechat_unionid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
    "city": "上海",
}


def test_marketer_and_analyst_see_masked_data_whatever_the_purpose() -> None:
    for role in ("marketer", "analyst"):
        for purpose in (None, "service", "data_subject_request"):
            out = mask_record(RECORD, role, purpose)
            assert out["name"] == "欧阳**" and out["phone"] == "138****5678"
            assert out["email"] == "n***@163.com" and out["id_card"] == "1101**********123X"
            assert out["wechat_unionid"] == "o***M"
            assert out["city"] == "上海" and out["record_id"] == "r1"
            assert not reveals_personal_data(RECORD, role, purpose)


def test_consultant_sees_contact_data_for_service_but_never_the_id_card() -> None:
    out = mask_record(RECORD, "consultant", "service")
    assert out["name"] == "欧阳娜娜" and out["phone"] == "+8613812345678"
    assert out["id_card"] == "1101**********123X"
    assert mask_record(RECORD, "consultant", None)["phone"] == "138****5678"
    assert reveals_personal_data(RECORD, "consultant", "service")


def test_compliance_sees_everything_only_for_a_data_subject_request() -> None:
    assert mask_record(RECORD, "compliance", "data_subject_request") == RECORD
    assert mask_record(RECORD, "compliance", "service")["phone"] == "138****5678"
    assert mask_record(RECORD, "admin", None)["name"] == "欧阳**"

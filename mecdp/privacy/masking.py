"""Masking of personal data in answers and exports, and who may see which fields unmasked.

Masked by default everywhere: 138****5678, 张*, 欧阳**, Li N*, z***@qq.com,
1101**********123X. `mask_record` applies the field kinds below and unmasks only what the
role may see for the purpose it declared (`unmasked_kinds`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mecdp.privacy.roles import Role

# Field name -> kind of personal data. Unknown fields pass through unchanged.
FIELD_KINDS: dict[str, str] = {
    "name": "name",
    "full_name": "name",
    "contact_name": "name",
    "phone": "phone",
    "mobile": "phone",
    "email": "email",
    "id_card": "id_card",
    "id_card_no": "id_card",
    "address": "address",
    **{
        t: "identifier"
        for t in (
            "wechat_unionid",
            "wechat_openid",
            "wecom_external_userid",
            "douyin_open_id",
            "xhs_user_id",
            "weibo_uid",
        )
    },
}
CONTACT_KINDS = frozenset({"name", "phone", "email", "identifier"})
ALL_KINDS = frozenset({"name", "phone", "email", "id_card", "identifier", "address"})

# Purposes a caller declares when asking for unmasked data (sent as `purpose=`).
SERVICE = "service"  # a consultant serving the member at a visit  # 到店服务
DATA_SUBJECT_REQUEST = "data_subject_request"  # PIPL Art. 45 access / copy
READ_PURPOSES = (SERVICE, DATA_SUBJECT_REQUEST)

# Compound Chinese surnames (复姓) keep both characters.
_COMPOUND = (
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 "
    "端木 独孤 南宫 西门 百里 呼延 万俟 闻人 澹台 公冶 太史 申屠 赫连 拓跋"
)
COMPOUND_SURNAMES = frozenset(_COMPOUND.split(" "))
_CJK = re.compile(r"[\u3400-\u9fff]")


def mask_phone(value: str) -> str:
    """+8613812345678 or 138 1234 5678 -> 138****5678; other lengths keep the last 4."""
    v = value.strip()
    digits = re.sub(r"\D", "", v)
    if v.startswith("+86") or (v.startswith("0086") and len(digits) == 15):
        digits = digits[2:] if v.startswith("+") else digits[4:]
    elif v.startswith(("+", "00")):
        digits = digits if v.startswith("+") else digits[2:]
        return "*" * max(len(digits) - 4, 4) + digits[-4:] if len(digits) > 6 else "****"
    if len(digits) == 11 and digits.startswith("1"):
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) > 6:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "****"


def mask_name(value: str) -> str:
    """张三 -> 张*; 欧阳娜娜 -> 欧阳**; Li Na -> Li N*; a single character -> *."""
    v = value.strip()
    if not v:
        return v
    if _CJK.search(v):
        keep = 2 if v[:2] in COMPOUND_SURNAMES and len(v) > 2 else 1
        if len(v) <= keep:
            return "*" * len(v)
        return v[:keep] + "*" * (len(v) - keep)
    parts = v.split()
    if len(parts) == 1:
        return parts[0][0] + "*" if len(parts[0]) > 1 else "*"
    return " ".join([parts[0], *(p[0] + "*" for p in parts[1:])])


def mask_email(value: str) -> str:
    """zhangsan@qq.com -> z***@qq.com."""
    local, at, domain = value.strip().partition("@")
    if not at:
        return mask_generic(value)
    return f"{local[:1]}***@{domain}"


def mask_id_card(value: str) -> str:
    """110101199001011234X-style numbers keep the first 4 and last 4 characters."""
    v = value.strip().upper()
    if len(v) <= 8:
        return "*" * len(v)
    return v[:4] + "*" * (len(v) - 8) + v[-4:]


def mask_generic(value: str) -> str:
    """Keep the first and last character: o***z; short values become ***."""
    v = value.strip()
    if len(v) <= 4:
        return "***"
    return f"{v[0]}***{v[-1]}"


def mask_address(value: str) -> str:
    """Keep the first 6 characters (province/city), mask the rest."""
    v = value.strip()
    return v[:6] + "****" if len(v) > 6 else "****"


MASKERS = {
    "name": mask_name,
    "phone": mask_phone,
    "email": mask_email,
    "id_card": mask_id_card,
    "identifier": mask_generic,
    "address": mask_address,
}


def mask_value(kind: str, value: Any) -> Any:
    """Mask one value of a personal-data kind (None and non-strings pass through)."""
    if value is None or not isinstance(value, str):
        return value
    return MASKERS.get(kind, mask_generic)(value)


def unmasked_kinds(role: Role | str, purpose: str | None) -> frozenset[str]:
    """The kinds of personal data `role` may see unmasked for `purpose` (empty: all masked).

    * consultant, purpose ``service``: contact data (name, phone, email, social ids), never the
      id-card number; the store scope is checked separately (`deps.check_member_scope`).
    * compliance and admin, purpose ``data_subject_request``: everything.
    * marketer and analyst: nothing, whatever the purpose.
    """
    role = Role(role)
    if role is Role.CONSULTANT and purpose == SERVICE:
        return CONTACT_KINDS
    if role in (Role.COMPLIANCE, Role.ADMIN) and purpose == DATA_SUBJECT_REQUEST:
        return ALL_KINDS
    return frozenset()


def mask_record(
    record: Mapping[str, Any], role: Role | str, purpose: str | None = None
) -> dict[str, Any]:
    """A copy of `record` with personal fields masked unless `role` may see them for `purpose`."""
    visible = unmasked_kinds(role, purpose)
    out: dict[str, Any] = {}
    for name, value in record.items():
        kind = FIELD_KINDS.get(name)
        out[name] = value if kind is None or kind in visible else mask_value(kind, value)
    return out


def reveals_personal_data(record: Mapping[str, Any], role: Role | str, purpose: str | None) -> bool:
    """True when `mask_record` would return at least one personal value unmasked (audit it)."""
    visible = unmasked_kinds(role, purpose)
    return any(
        FIELD_KINDS.get(k) in visible and isinstance(v, str) and v for k, v in record.items()
    )

"""How the console shows times and money: Asia/Shanghai, ¥ with 万 for large amounts.

Example:
    >>> format_money(128_0000)
    '¥1.28万'
    >>> format_money(98_000)
    '¥980'
    >>> format_money(12_345, lang="en")
    '¥123.45'
    >>> format_time("2025-01-01T16:30:00Z")
    '2025-01-02 00:30'
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
WAN = 10_000  # 万


def format_money(fen: int | None, *, lang: str = "zh-CN") -> str:
    """Fen as yuan: ¥980, ¥123.45; from ¥10,000 on as ¥1.28万 (zh) or ¥12,800 (en)."""
    if fen is None:
        return "—"
    yuan = Decimal(fen) / 100
    sign = "-" if yuan < 0 else ""
    yuan = abs(yuan)
    if lang.startswith("zh") and yuan >= WAN:
        wan = (yuan / WAN).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        text = f"{wan:f}".rstrip("0").rstrip(".")
        return f"{sign}¥{text}万"
    if yuan == yuan.to_integral_value():
        return f"{sign}¥{int(yuan):,}"
    return f"{sign}¥{yuan:,.2f}"


def format_time(value: str | datetime | None, *, with_time: bool = True) -> str:
    """A UTC time (ISO text with Z, or naive UTC datetime) in Asia/Shanghai."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    local = value.astimezone(SHANGHAI)
    return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

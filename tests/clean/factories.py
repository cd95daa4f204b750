"""Dirty staged batches: every rule's good and bad spellings, mixed deterministically."""

from __future__ import annotations

import random

import pyarrow as pa

PHONES = [
    "13812345678",
    "138 1234 5678",
    "+86 139-0000-1111",
    "0086 13700001111",
    "１３６１２３４５６７８",
    "010-12345678",
    "+1 650 253 0000",
    "1381234",
    "",
    None,
]
EMAILS = ["Li.Na@QQ.com", "wang＠163.com", "zhao@qq,com", "bad@@x", "", None]
NAMES = ["张 三", "Li  Na", "王五", "　赵六　", "", None]
GENDERS = ["男", "女", "F", "1", "2", "0", "未知", "x", None]
BIRTHDAYS = [
    "1990-05-04",
    "1990/5/4",
    "19900504",
    "1990年5月4日",
    "32997",
    "641750400",
    "1990-02-30",
    "1850-01-01",
    "生日",
    None,
]
TIMES = [
    "2024-03-05 14:30:00",
    "2024/3/5 14:30",
    "2024年3月5日",
    "20240305",
    "45356.5",
    "1709620200",
    "1709620200123",
    "2024-03-05T06:30:00Z",
    "2024-03-05T14:30:00+08:00",
    "2024-02-30",
    "2300-01-01",
    "soon",
    "",
]
AMOUNTS = [
    "1280",
    "¥1,280.00",
    "￥1280",
    "1280元",
    "RMB 1,280",
    "1.28万",
    "1.28w",
    "-",
    "",
    "-100",
    "abc",
]
BOOLS = ["是", "否", "Y", "n", "促销", "无", "", "maybe"]
CHANNELS = ["门店", "抖音", "小红书", "POS", "wechat_mp", "", "快手"]
CATEGORIES = ["注射", "光电", "laser", "皮肤", "", "其他"]
ORDER_TYPES = ["疗程卡", "储值", "普通", "", "团购"]
INTEGERS = ["1", "２", "1,200", "3.0", "", "3.5", "many"]
ID_CARDS = ["11010519491231002X", "440301199003071230", "110105194912310021", "", None]
OPENIDS = ["oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", " oAbC 123 ", "null", "", None]
APPIDS = ["wx1234567890abcdef", "", None]
CITIES = ["上海", " 北京 ", "", None]
STORES = ["sh01", "ＳＨ０２", "BJ 01", "", None]


# Spellings that fail their rule (the rest are good or empty).
BAD = {
    "1381234",
    "bad@@x",
    "x",
    "1990-02-30",
    "1850-01-01",
    "生日",
    "2024-02-30",
    "2300-01-01",
    "soon",
    "-100",
    "abc",
    "maybe",
    "快手",
    "其他",
    "团购",
    "3.5",
    "many",
    "110105194912310021",
}


def dirty_batch(kind: str, rows: int, seed: int = 7) -> pa.Table:
    """`rows` staged rows of `kind` ('orders' or 'contacts') as VARCHAR columns."""
    rng = random.Random(seed)

    def pick(values: list[str | None]) -> list[str | None]:
        """Mostly good values; a bad one in about one row in 40 per column."""
        good = [v for v in values if v not in BAD]
        return [rng.choice(values if rng.random() < 0.15 else good) for _ in range(rows)]

    columns: dict[str, list[str | None]] = {
        "phone": pick(PHONES),
        "phone2": pick(PHONES[:3] + [None] * 5),
        "email": pick(EMAILS),
        "name": pick(NAMES),
        "gender": pick(GENDERS),
        "birthday": pick(BIRTHDAYS),
        "city": pick(CITIES),
        "store_code": pick(STORES),
        "wechat_openid": pick(OPENIDS),
        "wechat_appid": pick(APPIDS),
        "id_card": pick(ID_CARDS),
    }
    if kind == "orders":
        columns |= {
            # a few repeated order numbers exercise the dedupe; some empty ones the row hash
            "order_no": [rng.choice([f"SO{i:05d}", f"SO{i % 7:05d}", " "]) for i in range(rows)],
            "customer_no": pick(["C001", "C002", "", None]),
            "channel": pick(CHANNELS),
            "ordered_at": pick(TIMES),
            "item_code": pick(STORES),
            "item_name": pick(["水光针", " 热玛吉（眼部） ", ""]),
            "category": pick(CATEGORIES),
            "quantity": pick(INTEGERS),
            "amount": pick(AMOUNTS),
            "paid": pick(AMOUNTS),
            "promo": pick(BOOLS),
            "order_type": pick(ORDER_TYPES),
            "sessions": pick(INTEGERS),
            "status": pick(["已完成", "paid", None]),
            "not_a_field": pick(["ignored"]),
        }
    else:
        columns |= {
            "contact_no": [rng.choice([f"M{i:04d}", ""]) for i in range(rows)],
            "observed_at": pick(TIMES),
            "member_no": pick(["VIP001", "ＶＩＰ００２", "0", None]),
        }
    table = {"_row": list(range(1, rows + 1)), "_ref": [f"{kind}.csv:{i + 1}" for i in range(rows)]}
    return pa.table(
        {"_row": pa.array(table["_row"], pa.int64()), "_ref": table["_ref"]}
        | {k: pa.array(v, pa.string()) for k, v in columns.items()}
    )

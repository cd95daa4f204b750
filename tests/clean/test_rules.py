"""Each cleaning rule over real-world spellings, on DuckDB (table-driven)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from clean.helpers import TEST_KEY, clean_values

from mecdp.clean.kinds import APPOINTMENT_STATUS, ORDER_TYPES, Field, FieldType
from mecdp.store.engine import DuckDBEngine


@pytest.fixture(scope="module")
def engine() -> DuckDBEngine:
    return DuckDBEngine(duckdb.connect())


def check(engine: DuckDBEngine, field: Field, cases: list[tuple[Any, Any, Any]], **kw: Any) -> None:
    got = clean_values(engine, field, [c[0] for c in cases], **kw)
    expected = [(c[1], c[2]) for c in cases]
    mismatches = [(c[0], g, e) for c, g, e in zip(cases, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


PHONE = Field("phone", FieldType.PHONE)


def test_phone(engine: DuckDBEngine) -> None:
    check(
        engine,
        PHONE,
        [
            ("13812345678", "+8613812345678", None),
            ("138 1234 5678", "+8613812345678", None),
            ("138-1234-5678", "+8613812345678", None),
            ("+86 138 1234 5678", "+8613812345678", None),
            ("+86-13812345678", "+8613812345678", None),
            ("008613812345678", "+8613812345678", None),
            ("8613812345678", "+8613812345678", None),
            ("１３８１２３４５６７８", "+8613812345678", None),
            ("＋８６ １３８ １２３４ ５６７８", "+8613812345678", None),
            (" 13812345678 ", "+8613812345678", None),
            ("010-12345678", "+861012345678", None),
            ("0755-12345678", "+8675512345678", None),
            ("(021) 6234 5678", "+862162345678", None),
            ("+1 650-253-0000", "+16502530000", None),
            ("+44 20 7946 0958", "+442079460958", None),
            ("1381234", None, "phone.invalid"),
            ("12345678901", None, "phone.invalid"),
            ("138123456789", None, "phone.invalid"),
            ("abc", None, "phone.invalid"),
            ("138abcd5678", None, "phone.invalid"),
            ("", None, None),
            ("   ", None, None),
            (None, None, None),
        ],
    )


def test_email(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("email", FieldType.EMAIL),
        [
            ("Zhang.San@QQ.com", "zhang.san@qq.com", None),
            ("  li@163.com ", "li@163.com", None),
            ("li＠163.com", "li@163.com", None),
            ("ｌｉ＠１６３．ｃｏｍ", "li@163.com", None),
            ("wang@qq,com", "wang@qq.com", None),
            ("wang@qq。com", "wang@qq.com", None),
            ("wang@@qq.com", None, "email.invalid"),
            ("wang@qq", None, "email.invalid"),
            ("wang qq@qq.com", None, "email.invalid"),
            ("wangqq.com", None, "email.invalid"),
            ("", None, None),
            (None, None, None),
        ],
    )


def test_name(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("name", FieldType.NAME),
        [
            ("张三", "张三", None),
            ("张 三", "张三", None),
            (" 张　三 ", "张三", None),
            ("欧阳 娜娜", "欧阳娜娜", None),
            ("Li  Na", "Li Na", None),
            ("Ｌｉ　Ｎａ", "Li Na", None),
            ("  ", None, None),
            (None, None, None),
        ],
    )


def test_text_and_code(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("item_name", FieldType.TEXT),
        [
            ("水光针  补水", "水光针 补水", None),
            ("  热玛吉（眼部） ", "热玛吉(眼部)", None),
            ("Thermage\tFLX", "Thermage FLX", None),
            ("", None, None),
        ],
    )
    check(
        engine,
        Field("store_code", FieldType.CODE),
        [
            ("sh 01", "SH01", None),
            ("ＳＨ０１", "SH01", None),
            ("SH-01", "SH-01", None),
            (" ", None, None),
        ],
    )


def test_gender(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("gender", FieldType.GENDER),
        [
            ("男", "M", None),
            ("男性", "M", None),
            ("M", "M", None),
            ("male", "M", None),
            ("1", "M", None),
            ("Male ", "M", None),
            ("女", "F", None),
            ("女性", "F", None),
            ("f", "F", None),
            ("Female", "F", None),
            ("2", "F", None),
            ("女士", "F", None),
            ("0", None, None),  # GB/T 2261.1: 0 = unknown
            ("未知", None, None),
            ("unknown", None, None),
            ("空", None, None),
            ("", None, None),
            ("x", None, "gender.unknown"),
            ("3", None, "gender.unknown"),
        ],
    )


TIMESTAMP = Field("ordered_at", FieldType.TIMESTAMP)


def test_timestamp_local_times_become_utc(engine: DuckDBEngine) -> None:
    check(
        engine,
        TIMESTAMP,
        [
            ("2024-03-05 14:30:00", ts("2024-03-05 06:30:00"), None),
            ("2024-03-05", ts("2024-03-04 16:00:00"), None),
            ("2024/3/5 14:30", ts("2024-03-05 06:30:00"), None),
            ("2024/3/5", ts("2024-03-04 16:00:00"), None),
            ("2024.3.5 9:05:07", ts("2024-03-05 01:05:07"), None),
            ("2024年3月5日", ts("2024-03-04 16:00:00"), None),
            ("2024年3月5日 14:30", ts("2024-03-05 06:30:00"), None),
            ("２０２４－０３－０５　１４：３０：００", ts("2024-03-05 06:30:00"), None),
            ("20240305", ts("2024-03-04 16:00:00"), None),
            ("20240305143000", ts("2024-03-05 06:30:00"), None),
            ("2024-03-05T14:30:00", ts("2024-03-05 06:30:00"), None),
            ("2024-03-05T06:30:00Z", ts("2024-03-05 06:30:00"), None),
            ("2024-03-05T14:30:00+08:00", ts("2024-03-05 06:30:00"), None),
            ("2024-03-05T01:30:00-05:00", ts("2024-03-05 06:30:00"), None),
            ("2024-03-05 14:30:00.250", ts("2024-03-05 06:30:00.250"), None),
            ("45356", ts("2024-03-04 16:00:00"), None),
            ("45356.5", ts("2024-03-05 04:00:00"), None),
            ("1709620200", ts("2024-03-05 06:30:00"), None),
            ("1709620200123", ts("2024-03-05 06:30:00.123"), None),
            ("2024-02-30", None, "timestamp.invalid"),
            ("2024-13-01 10:00:00", None, "timestamp.invalid"),
            ("1899-12-31", None, "timestamp.out_of_range"),
            ("2200-01-01", None, "timestamp.out_of_range"),
            ("yesterday", None, "timestamp.unparseable"),
            ("3/5/2024", None, "timestamp.unparseable"),
            ("", None, None),
            ("-", None, None),
            (None, None, None),
        ],
    )


def test_date_has_no_time_zone_shift(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("birthday", FieldType.DATE),
        [
            ("1990-05-04", dt.date(1990, 5, 4), None),
            ("1990/5/4", dt.date(1990, 5, 4), None),
            ("1990.5.4", dt.date(1990, 5, 4), None),
            ("1990年5月4日", dt.date(1990, 5, 4), None),
            ("19900504", dt.date(1990, 5, 4), None),
            ("32997", dt.date(1990, 5, 4), None),
            ("641750400", dt.date(1990, 5, 4), None),  # 1990-05-04 00:00 Beijing as epoch
            ("1990-02-29", None, "date.invalid"),
            ("1850-01-01", None, "date.out_of_range"),
            ("五月四日", None, "date.unparseable"),
            ("", None, None),
        ],
    )


def test_money_to_fen(engine: DuckDBEngine) -> None:
    money = Field("amount", FieldType.MONEY)
    check(
        engine,
        money,
        [
            ("1280", 128000, None),
            ("1280.5", 128050, None),
            ("¥1,280.00", 128000, None),
            ("￥1280", 128000, None),
            ("1280元", 128000, None),
            ("RMB 1,280", 128000, None),
            ("1.28万", 1280000, None),
            ("1.28w", 1280000, None),
            ("１２８０", 128000, None),
            ("0.01", 1, None),
            ("0", 0, None),
            ("-", None, None),
            ("", None, None),
            (None, None, None),
            ("-100", None, "money.negative"),
            ("¥-1,280", None, "money.negative"),
            ("abc", None, "money.invalid"),
            ("12.3.4", None, "money.invalid"),
            ("1e5", None, "money.invalid"),
        ],
    )
    check(engine, money, [("128000", 128000, None), ("1,280", 1280, None)], money_unit="fen")
    fen_field = Field("amount", FieldType.MONEY, unit="fen")
    check(engine, fen_field, [("128000", 128000, None)])


def test_integer_and_decimal(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("quantity", FieldType.INTEGER),
        [
            ("3", 3, None),
            ("１２", 12, None),
            ("1,200", 1200, None),
            ("3.0", 3, None),
            (" 7 ", 7, None),
            ("-2", -2, None),
            ("", None, None),
            ("3.5", None, "integer.invalid"),
            ("three", None, "integer.invalid"),
            ("99999999999", None, "integer.invalid"),
        ],
    )
    check(
        engine,
        Field("units", FieldType.DECIMAL),
        [
            ("2.5", Decimal("2.50"), None),
            ("１.２５", Decimal("1.25"), None),
            ("1,000.125", Decimal("1000.13"), None),
            ("", None, None),
            ("abc", None, "decimal.invalid"),
        ],
    )


def test_bool(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("promo", FieldType.BOOL),
        [
            ("是", True, None),
            ("否", False, None),
            ("Y", True, None),
            ("n", False, None),
            ("yes", True, None),
            ("No", False, None),
            ("TRUE", True, None),
            ("false", False, None),
            ("1", True, None),
            ("0", False, None),
            ("有", True, None),
            ("无", False, None),
            ("促销", True, None),
            ("", None, None),
            ("maybe", None, "bool.invalid"),
        ],
    )


def test_channel(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("channel", FieldType.CHANNEL),
        [
            ("门店", "pos", None),
            ("抖音", "douyin", None),
            ("TikTok", "douyin", None),
            ("小 红 书", "xhs", None),
            ("wechat_mp", "wechat_mp", None),
            ("POS", "pos", None),
            ("微信小程序", "wechat_mp", None),
            ("", None, None),
            ("快手", None, "channel.unknown"),
        ],
    )


def test_enum(engine: DuckDBEngine) -> None:
    order_type = Field("order_type", FieldType.ENUM, choices=ORDER_TYPES)
    check(
        engine,
        order_type,
        [
            ("疗程卡", "course_card", None),
            ("储值", "stored_value", None),
            ("Course_Card", "course_card", None),
            ("", "normal", None),
            (None, "normal", None),
            ("团购", None, "enum.unknown"),
        ],
    )
    status = Field("status", FieldType.ENUM, choices=APPOINTMENT_STATUS)
    check(
        engine,
        status,
        [
            ("已到店", "arrived", None),
            ("爽约", "no_show", None),
            ("No Show", "no_show", None),
            ("", None, None),
            ("改期", None, "enum.unknown"),
        ],
    )


def test_identifier(engine: DuckDBEngine) -> None:
    check(
        engine,
        Field("wechat_openid", FieldType.IDENTIFIER),
        [
            ("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", None),
            (" oUpF8 uMuA ", "oUpF8uMuA", None),
            ("ＶＩＰ００１", "VIP001", None),
            ("null", None, None),
            ("None", None, None),
            ("-", None, None),
            ("N/A", None, None),
            ("0", None, None),
            ("", None, None),
        ],
    )


def test_id_card_is_hashed_with_the_key(engine: DuckDBEngine) -> None:
    def keyed(number: str) -> str:
        return hmac.new(TEST_KEY, number.encode(), hashlib.sha256).hexdigest()

    check(
        engine,
        Field("id_card", FieldType.ID_CARD),
        [
            ("11010519491231002X", keyed("11010519491231002X"), None),
            ("11010519491231002x", keyed("11010519491231002X"), None),
            ("110105 19491231 002X", keyed("11010519491231002X"), None),
            ("440301199003071230", keyed("440301199003071230"), None),
            ("440524188001010014", None, "id_card.invalid"),  # born 1880: implausible,
            ("110105194912310021", None, "id_card.invalid"),  # wrong check digit
            ("110105194902300024", None, "id_card.invalid"),  # 1949-02-30
            ("11010519491231002", None, "id_card.invalid"),
            ("110105491231002", None, "id_card.invalid"),  # old 15-digit form
            ("", None, None),
        ],
    )

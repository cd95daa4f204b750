"""Record kinds: the canonical fields each kind of source record is cleaned into.

A mapping (collect/mappings/*.yaml) maps a file's columns onto these fields; the cleaning
stage (clean/stage.py) standardises and validates each field by its `FieldType`, writes the
kind's table, the `contacts` row and the `record_identifiers` rows, and quarantines the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    TEXT = "text"  # trimmed, full-width -> half-width, inner spaces collapsed
    CODE = "code"  # TEXT, upper-case, no spaces (store and item codes)
    NAME = "name"  # person name: TEXT, no spaces between CJK characters
    PHONE = "phone"  # E.164, +86 default
    EMAIL = "email"  # lower-case, syntax-checked
    GENDER = "gender"  # 'F' / 'M' from 女/男/F/M/female/male/1/0/2...
    DATE = "date"  # 2024/3/5, 2024年3月5日, 20240305, Excel serial, epoch
    TIMESTAMP = "timestamp"  # as DATE plus time of day; local (Asia/Shanghai) -> UTC
    MONEY = "money"  # ¥1,280.00, 1.28万, fen -> BIGINT fen
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOL = "bool"  # 是/否/Y/N/true/false/1/0
    CHANNEL = "channel"  # clean.codes.CHANNELS via CHANNEL_SYNONYMS
    ENUM = "enum"  # one of `Field.choices` (with synonyms)
    IDENTIFIER = "identifier"  # an identifier value: trimmed, no inner spaces, case kept
    ID_CARD = "id_card"  # resident id-card number, checksum-validated, stored as keyed hash


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    # ENUM only: canonical value -> accepted spellings (matched lower-cased, spaces removed)
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # IDENTIFIER / PHONE / EMAIL / ID_CARD: the identifier type written to record_identifiers
    id_type: str | None = None
    description: str = ""
    # MONEY only: 'fen' when the source already writes fen; None follows the mapping/options
    unit: str | None = None


@dataclass(frozen=True)
class RecordKind:
    name: str
    table: str | None  # the kind's own table; None when it only feeds contacts
    key: str | None  # natural key field; None means "hash of the whole row"
    time_field: str | None  # the field that dates the record (observed_at)
    fields: tuple[Field, ...]
    description: str = ""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]


# Who the record is about. Every kind carries these (all optional); a record with person
# data writes a `contacts` row, and each identifier a `record_identifiers` row.
PERSON_FIELDS: tuple[Field, ...] = (
    Field("name", FieldType.NAME, description="姓名"),
    Field("gender", FieldType.GENDER, description="性别"),
    Field("birthday", FieldType.DATE, description="生日"),
    Field("city", FieldType.TEXT, description="城市"),
    Field("phone", FieldType.PHONE, id_type="phone", description="手机号"),
    Field("phone2", FieldType.PHONE, id_type="phone", description="备用手机号"),
    Field("email", FieldType.EMAIL, id_type="email", description="邮箱"),
    Field("wechat_unionid", FieldType.IDENTIFIER, id_type="wechat_unionid"),
    Field(
        "wechat_openid",
        FieldType.IDENTIFIER,
        id_type="wechat_openid",
        description="openid; stored as '<wechat_appid>:<openid>' when the app is known",
    ),
    Field("wechat_appid", FieldType.IDENTIFIER, description="the app an openid belongs to"),
    Field("wecom_external_userid", FieldType.IDENTIFIER, id_type="wecom_external_userid"),
    Field("douyin_open_id", FieldType.IDENTIFIER, id_type="douyin_open_id"),
    Field("xhs_user_id", FieldType.IDENTIFIER, id_type="xhs_user_id"),
    Field("weibo_uid", FieldType.IDENTIFIER, id_type="weibo_uid"),
    Field("idfa", FieldType.IDENTIFIER, id_type="idfa"),
    Field("oaid", FieldType.IDENTIFIER, id_type="oaid"),
    Field("imei", FieldType.IDENTIFIER, id_type="imei"),
    Field("android_id", FieldType.IDENTIFIER, id_type="android_id"),
    Field("member_no", FieldType.IDENTIFIER, id_type="member_no", description="会员号"),
    Field("id_card", FieldType.ID_CARD, id_type="id_card_hash", description="身份证号"),
    Field("customer_no", FieldType.IDENTIFIER, id_type="customer_no", description="客户编号"),
)

ORDER_TYPES = (
    ("normal", ("normal", "普通", "单次", "普通订单", "")),
    ("course_card", ("course_card", "疗程卡", "疗程", "次卡", "套餐卡")),
    ("stored_value", ("stored_value", "储值卡", "储值", "充值", "会员卡充值")),
)
APPOINTMENT_STATUS = (
    ("booked", ("booked", "已预约", "预约", "待到店", "scheduled")),
    ("arrived", ("arrived", "已到店", "到店", "已到", "完成", "已完成", "done", "completed")),
    ("no_show", ("no_show", "noshow", "爽约", "未到店", "未到", "失约")),
    ("cancelled", ("cancelled", "canceled", "已取消", "取消")),
)
INTERACTION_TYPES = (
    ("like", ("like", "点赞", "赞")),
    ("comment", ("comment", "评论")),
    ("share", ("share", "分享", "转发")),
    ("follow", ("follow", "关注")),
    ("favorite", ("favorite", "收藏")),
    ("view", ("view", "浏览", "观看", "阅读")),
    ("dm", ("dm", "私信", "message", "消息")),
    ("lead_form", ("lead_form", "留资", "表单", "线索", "lead")),
    ("call", ("call", "电话", "来电", "去电", "通话")),
    ("chat", ("chat", "在线咨询", "咨询", "会话")),
    ("ticket", ("ticket", "工单", "投诉", "complaint")),
    ("sms_reply", ("sms_reply", "短信回复")),
    ("email_reply", ("email_reply", "邮件回复")),
)
CATEGORIES = (
    ("注射", ("注射", "injection", "注射类", "微整")),
    ("光电", ("光电", "laser", "光电类", "激光")),
    ("手术", ("手术", "surgery", "整形手术", "手术类")),
    ("皮肤管理", ("皮肤管理", "skin", "护肤", "皮肤")),
    ("产品", ("产品", "product", "商品", "护肤品")),
)


def _kind(
    name: str,
    table: str | None,
    key: str | None,
    time_field: str | None,
    own: tuple[Field, ...],
    description: str,
) -> RecordKind:
    return RecordKind(name, table, key, time_field, own + PERSON_FIELDS, description)


ORDERS = _kind(
    "orders",
    "orders",
    "order_no",
    "ordered_at",
    (
        Field("order_no", FieldType.TEXT, required=True, description="订单号"),
        Field("store_code", FieldType.CODE, description="门店"),
        Field("channel", FieldType.CHANNEL, description="渠道"),
        Field("ordered_at", FieldType.TIMESTAMP, required=True, description="下单/消费时间"),
        Field("item_code", FieldType.CODE, description="项目编码"),
        Field("item_name", FieldType.TEXT, description="项目"),
        Field("category", FieldType.ENUM, choices=CATEGORIES, description="项目类别"),
        Field("quantity", FieldType.INTEGER, description="数量"),
        Field("amount", FieldType.MONEY, required=True, description="消费金额"),
        Field("paid", FieldType.MONEY, description="实收金额"),
        Field("promo", FieldType.BOOL, description="是否促销"),
        Field("order_type", FieldType.ENUM, choices=ORDER_TYPES, description="订单类型"),
        Field("sessions", FieldType.INTEGER, description="疗程次数"),
        Field("status", FieldType.TEXT, description="状态"),
    ),
    "A purchase: POS, e-commerce, course card (疗程卡) or stored value (储值卡).",
)

APPOINTMENTS = _kind(
    "appointments",
    "appointments",
    "appointment_no",
    "scheduled_at",
    (
        Field("appointment_no", FieldType.TEXT, required=True, description="预约号"),
        Field("store_code", FieldType.CODE, description="门店"),
        Field("channel", FieldType.CHANNEL, description="预约渠道"),
        Field("item_code", FieldType.CODE, description="项目编码"),
        Field("item_name", FieldType.TEXT, description="项目"),
        Field("consultant", FieldType.NAME, description="咨询师"),
        Field("scheduled_at", FieldType.TIMESTAMP, required=True, description="预约时间"),
        Field("arrived_at", FieldType.TIMESTAMP, description="到店时间"),
        Field(
            "status", FieldType.ENUM, required=True, choices=APPOINTMENT_STATUS, description="状态"
        ),
    ),
    "A booking and whether the member came.",
)

TREATMENTS = _kind(
    "treatments",
    "treatments",
    "treatment_no",
    "performed_at",
    (
        Field("treatment_no", FieldType.TEXT, required=True, description="治疗单号"),
        Field("store_code", FieldType.CODE, description="门店"),
        Field("item_code", FieldType.CODE, description="项目编码"),
        Field("item_name", FieldType.TEXT, description="项目"),
        Field("category", FieldType.ENUM, choices=CATEGORIES, description="项目类别"),
        Field("doctor", FieldType.NAME, description="医生"),
        Field("units", FieldType.DECIMAL, description="剂量/单位"),
        Field("performed_at", FieldType.TIMESTAMP, required=True, description="治疗时间"),
    ),
    "A treatment performed (sensitive medical data).",
)

INTERACTIONS = _kind(
    "interactions",
    "interactions",
    "interaction_no",
    "occurred_at",
    (
        Field("interaction_no", FieldType.TEXT, description="记录号 (hash of the row when absent)"),
        Field("channel", FieldType.CHANNEL, required=True, description="渠道"),
        Field(
            "type", FieldType.ENUM, required=True, choices=INTERACTION_TYPES, description="互动类型"
        ),
        Field("content", FieldType.TEXT, description="内容"),
        Field("topic", FieldType.TEXT, description="话题/项目"),
        Field("agent", FieldType.NAME, description="客服/坐席"),
        Field("occurred_at", FieldType.TIMESTAMP, required=True, description="时间"),
    ),
    "A social or service touch: like, comment, DM, lead form, call, chat, ticket.",
)

FEEDBACK = _kind(
    "feedback",
    "feedback",
    "response_no",
    "submitted_at",
    (
        Field("response_no", FieldType.TEXT, description="答卷编号 (hash of the row when absent)"),
        Field("channel", FieldType.CHANNEL, description="渠道"),
        Field("store_code", FieldType.CODE, description="门店"),
        Field("item_code", FieldType.CODE, description="项目编码"),
        Field("survey", FieldType.TEXT, description="问卷"),
        Field("score", FieldType.INTEGER, description="评分/NPS"),
        Field("text", FieldType.TEXT, description="意见"),
        Field("submitted_at", FieldType.TIMESTAMP, required=True, description="提交时间"),
    ),
    "A survey answer, NPS score or free-text comment.",
)

CONTACTS = _kind(
    "contacts",
    None,
    "contact_no",
    "observed_at",
    (
        Field("contact_no", FieldType.TEXT, description="记录号 (hash of the row when absent)"),
        Field("store_code", FieldType.CODE, description="门店"),
        Field("observed_at", FieldType.TIMESTAMP, description="登记时间"),
    ),
    "A person record only: member master, lead list, third-party list.",
)

RECORD_KINDS: dict[str, RecordKind] = {
    k.name: k for k in (ORDERS, APPOINTMENTS, TREATMENTS, INTERACTIONS, FEEDBACK, CONTACTS)
}

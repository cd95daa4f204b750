"""Closed vocabularies: channels, identifier types, and the synonyms that map onto them."""

from __future__ import annotations

# Channel codes a source or a record can carry.
CHANNELS: dict[str, str] = {
    "web": "Website",
    "h5": "H5 page",
    "wechat_oa": "WeChat official account (公众号)",
    "wechat_mp": "WeChat mini-program (小程序)",
    "wecom": "WeCom (企业微信)",
    "douyin": "Douyin (抖音)",
    "xhs": "Xiaohongshu (小红书)",
    "weibo": "Weibo (微博)",
    "meituan": "Meituan (美团)",
    "dianping": "Dianping (大众点评)",
    "ecommerce": "E-commerce (天猫/京东/有赞)",
    "pos": "Store POS (门店收银)",
    "his": "Clinic system (HIS)",
    "call_center": "Call centre (呼叫中心)",
    "chat": "Online chat (在线客服)",
    "sms": "SMS (短信)",
    "email": "Email (邮件)",
    "survey": "Survey (问卷)",
    "third_party": "Third-party list (第三方名单)",
    "app": "Mobile app",
    "offline": "Offline / walk-in (到店)",
}

# Synonyms seen in exports, normalised (lower-case, no spaces) -> channel code.
CHANNEL_SYNONYMS: dict[str, str] = {
    "官网": "web", "网站": "web", "website": "web", "pc": "web",
    "h5": "h5", "落地页": "h5", "m站": "h5",
    "微信": "wechat_oa", "公众号": "wechat_oa", "微信公众号": "wechat_oa", "wechat": "wechat_oa",
    "小程序": "wechat_mp", "微信小程序": "wechat_mp", "miniprogram": "wechat_mp",
    "企业微信": "wecom", "企微": "wecom", "wework": "wecom",
    "抖音": "douyin", "tiktok": "douyin", "dy": "douyin",
    "小红书": "xhs", "红书": "xhs", "xiaohongshu": "xhs", "red": "xhs",
    "微博": "weibo",
    "美团": "meituan", "大众点评": "dianping", "点评": "dianping",
    "天猫": "ecommerce", "京东": "ecommerce", "有赞": "ecommerce", "电商": "ecommerce",
    "tmall": "ecommerce", "jd": "ecommerce", "youzan": "ecommerce",
    "门店": "pos", "收银": "pos", "到店": "offline", "线下": "offline", "store": "pos",
    "his": "his", "诊所系统": "his",
    "电话": "call_center", "呼叫中心": "call_center", "400": "call_center", "callcenter": "call_center",
    "在线客服": "chat", "客服": "chat", "livechat": "chat",
    "短信": "sms", "邮件": "email", "问卷": "survey", "第三方": "third_party",
    "app": "app", "ios": "app", "android": "app",
}

# Identifier types OneID links on. Values are normalised by the cleaning stage.
IDENTIFIER_TYPES: dict[str, str] = {
    "phone": "Mobile or landline, E.164",
    "email": "Email address, lower-case",
    "wechat_unionid": "WeChat unionid (one per person across a company's apps)",
    "wechat_openid": "WeChat openid (per app; stored as appid:openid)",
    "wecom_external_userid": "WeCom external_userid (企业微信外部联系人)",
    "douyin_open_id": "Douyin open_id",
    "xhs_user_id": "Xiaohongshu user id",
    "weibo_uid": "Weibo uid",
    "idfa": "iOS advertising id",
    "oaid": "Android OAID",
    "imei": "Device IMEI",
    "android_id": "Android id",
    "member_no": "Membership number (会员号)",
    "id_card_hash": "Keyed hash of a resident id-card number (身份证号); never stored plain",
    "customer_no": "Order-system customer id",
    "anonymous_id": "Tracking SDK anonymous id (cookie / device)",
    "user_id": "Tracking SDK user id",
}

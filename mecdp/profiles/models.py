"""Profile value types shared by the service, the API, the console and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Timeline kinds, in the order the console lists its filters.
TIMELINE_KINDS = (
    "event",  # online behaviour (web/H5/mini-program/app)
    "interaction",  # social touches, lead forms, calls, chats
    "appointment",  # bookings and visits
    "order",  # purchases (incl. 疗程卡 / 储值卡)
    "treatment",  # performed treatments (sensitive medical data)
    "feedback",  # surveys / NPS
    "ticket",  # customer-service tickets
)
# Identifier types the member search accepts, by what a user types.
SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "phone": ("phone",),
    "member_no": ("member_no",),
    "wechat": ("wechat_unionid", "wechat_openid", "wecom_external_userid"),
    "douyin": ("douyin_open_id",),
}


@dataclass(frozen=True)
class BuildReport:
    """What one golden-record build (full or refresh) wrote."""

    persons: int
    traits: int
    trait_changes: int
    identifiers: int
    timeline_rows: int
    course_cards: int
    seconds: float
    scope: str = "full"  # full, or refresh

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimelinePage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    size: int
    kinds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    sensitive_included: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "next_cursor": self.next_cursor,
            "size": self.size,
            "kinds": list(self.kinds),
            "channels": list(self.channels),
            "sensitive_included": self.sensitive_included,
        }


@dataclass(frozen=True)
class SearchHit:
    one_id: str
    name: str | None
    phone: str | None
    gender: str | None
    member_level: str | None
    home_store: str | None
    last_seen: str | None
    matched_by: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Member layering rules: RFM, behaviour tiers and treatment cycles.

The shipped rules are `layering.yaml` (documented there); a workspace overrides them in
``<workspace>/layering.yaml`` (mappings merge key by key, lists and values replace).
Bad rules raise `InputError` naming the field (``rfm.cutoffs.frequency``) and the reason.

Example:
    >>> config = LayeringConfig.load()
    >>> config.rfm.window_days, config.rfm.tier_of_segment["important_value"]
    (365, 'high_value')
    >>> config.label("rfm_segment", "important_retain")
    '重要挽留'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mecdp.clean.rules import lit
from mecdp.compute.clv import ClvConfig
from mecdp.errors import InputError

WORKSPACE_FILE = "layering.yaml"

# The eight classic RFM groups (RFM 八大客户类型) as (key, R high, F high, M high).
SEGMENTS: tuple[tuple[str, bool, bool, bool], ...] = (
    ("important_value", True, True, True),  # 重要价值
    ("important_develop", True, False, True),  # 重要发展
    ("important_keep", False, True, True),  # 重要保持
    ("important_retain", False, False, True),  # 重要挽留
    ("general_value", True, True, False),  # 一般价值
    ("general_develop", True, False, False),  # 一般发展
    ("general_keep", False, True, False),  # 一般保持
    ("general_retain", False, False, False),  # 一般挽留
)
SEGMENT_KEYS = tuple(s[0] for s in SEGMENTS)
ValueTier = Literal["high_value", "potential", "dormant"]  # 高价值 潜力 休眠
RFM_METRICS = ("recency_days", "frequency", "monetary_fen")


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ascending(values: list[float] | None, what: str) -> list[float] | None:
    if values is not None and (len(values) != 4 or values != sorted(values)):
        raise ValueError(f"{what} needs four ascending numbers, got {values}")
    return values


# --- RFM ------------------------------------------------------------------------------------


class RfmCutoffs(_Rules):
    """Fixed cut-offs c1..c4 per metric; None scores the metric by quintiles."""

    recency_days: list[float] | None = None
    frequency: list[float] | None = None
    monetary_fen: list[float] | None = None

    @field_validator("recency_days", "frequency", "monetary_fen")
    @classmethod
    def _four_ascending(cls, values: list[float] | None) -> list[float] | None:
        return _ascending(values, "cut-offs")

    def for_metric(self, metric: str) -> list[float] | None:
        values: list[float] | None = getattr(self, metric)
        return values


class RfmRules(_Rules):
    window_days: int = Field(365, gt=0)
    cutoffs: RfmCutoffs = RfmCutoffs()
    high_rule: Literal["threshold", "above_average"] = "threshold"
    high_score_threshold: int = Field(3, ge=1, le=5)
    tier_of_segment: dict[str, ValueTier]
    dormant_after_days: int = Field(180, gt=0)

    @field_validator("tier_of_segment")
    @classmethod
    def _every_segment(cls, mapping: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(mapping) - set(SEGMENT_KEYS))
        missing = [s for s in SEGMENT_KEYS if s not in mapping]
        if unknown:
            raise ValueError(f"unknown segment(s) {unknown}; one of: {', '.join(SEGMENT_KEYS)}")
        if missing:
            raise ValueError(f"no tier for segment(s) {missing}")
        return mapping


# --- behaviour ------------------------------------------------------------------------------


class VipRule(_Rules):
    """VIP 高端服务常客: repeat high-end orders or high spend in the window."""

    tier: Literal["vip"]
    high_end_price_bands: list[str] = ["high", "luxury"]
    count_luxury_items: bool = True
    min_high_end_orders: int = Field(2, ge=1)
    min_spend_fen: int | None = Field(None, ge=0)


class CourseRule(_Rules):
    """疗程型: bought course cards (疗程卡) in the window."""

    tier: Literal["course"]
    min_course_card_orders: int = Field(1, ge=1)


class PromotionRule(_Rules):
    """促销驱动型: most orders in the window on promotion."""

    tier: Literal["promotion_driven"]
    min_promo_share: float = Field(0.6, gt=0, le=1)
    min_orders: int = Field(2, ge=1)


class OneTimeRule(_Rules):
    """单次体验型: exactly one order ever."""

    tier: Literal["one_time"]


PurchaseRule = Annotated[
    VipRule | CourseRule | PromotionRule | OneTimeRule, Field(discriminator="tier")
]


class PurchaseRules(_Rules):
    window_days: int | None = Field(365, gt=0)
    rules: list[PurchaseRule]

    @field_validator("rules")
    @classmethod
    def _each_tier_once(cls, rules: list[PurchaseRule]) -> list[PurchaseRule]:
        tiers = [r.tier for r in rules]
        repeated = sorted({t for t in tiers if tiers.count(t) > 1})
        if repeated:
            raise ValueError(f"tier(s) {repeated} listed more than once")
        return rules


class RecencyBand(_Rules):
    max_days: int = Field(ge=0)
    points: int = Field(ge=0)


class CountBand(_Rules):
    min_count: int = Field(ge=1)
    points: int = Field(ge=0)


class InteractionRules(_Rules):
    window_days: int = Field(90, gt=0)
    event_types: list[str] | None = ["track", "page", "screen"]
    recency_points: list[RecencyBand]
    frequency_points: list[CountBand]
    breadth_points: list[CountBand]
    high_min_score: int = Field(7, ge=0)


class BehaviourRules(_Rules):
    purchase: PurchaseRules
    interaction: InteractionRules
    preference_categories: list[str] = Field(min_length=1)


# --- treatment cycles -----------------------------------------------------------------------


class CycleSpec(_Rules):
    cycle_days: int = Field(gt=0)
    course_interval_days: int | None = Field(None, gt=0)


class NamePattern(CycleSpec):
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _plain_text(cls, pattern: str) -> str:
        # matched with LIKE: keep wildcard and quote characters out
        bad = sorted({c for c in pattern if c in "%_'\\"})
        if bad:
            raise ValueError(f"pattern {pattern!r} may not contain {bad}")
        return pattern


class CycleRules(_Rules):
    upcoming_days: int = Field(30, ge=0)
    items: dict[str, CycleSpec] = {}
    name_patterns: list[NamePattern] = []
    category_defaults: dict[str, Annotated[int, Field(gt=0)]] = {}


# --- the whole file -------------------------------------------------------------------------


class Label(_Rules):
    zh: str
    en: str


class LayeringConfig(_Rules):
    rfm: RfmRules
    behaviour: BehaviourRules
    cycles: CycleRules
    clv: ClvConfig = ClvConfig()
    labels: dict[str, dict[str, Label]]

    @model_validator(mode="after")
    def _segments_labelled(self) -> LayeringConfig:
        missing = [s for s in SEGMENT_KEYS if s not in self.labels.get("rfm_segment", {})]
        if missing:
            raise ValueError(f"labels.rfm_segment lacks {missing}")
        return self

    @classmethod
    def load(cls, workspace: Path | None = None) -> LayeringConfig:
        """The shipped rules merged with ``<workspace>/layering.yaml`` when there is one."""
        text = resources.files("mecdp.compute").joinpath("layering.yaml").read_text("utf-8")
        data: dict[str, Any] = yaml.safe_load(text)
        source = "layering.yaml (shipped)"
        override = workspace / WORKSPACE_FILE if workspace else None
        if override is not None and override.is_file():
            extra = yaml.safe_load(override.read_text("utf-8")) or {}
            if not isinstance(extra, dict):
                raise InputError(
                    f"{override} must hold a mapping", field=str(override), rule="layering.file"
                )
            data = merge(data, extra)
            source = str(override)
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "layering rules") -> LayeringConfig:
        """Validate `data`; the error names the first bad field and why."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top)"
            bad = first.get("input")
            raise InputError(
                f"{source}: {where}: {first['msg']}",
                field=where,
                value=None if isinstance(bad, dict) else bad,  # a whole section is noise
                rule="layering.config",
            ) from exc

    def label(self, kind: str, key: str, lang: str = "zh") -> str:
        """The console label of an output key (the key itself when unlabelled)."""
        found = self.labels.get(kind, {}).get(key)
        if found is None:
            return key
        return found.zh if lang == "zh" else found.en


# A rule value (from YAML) as a SQL string literal.
sql_string = lit


def sql_strings(values: list[str]) -> str:
    """Rule values as a SQL list body: 'a', 'b' (NULL when empty, so IN matches nothing)."""
    return ", ".join(sql_string(v) for v in values) or "NULL"


# Days are the chain's calendar days in China (UTC+8), as ``order_day`` in the facts: a
# window of N days ends at as_of and starts at midnight in China N days before as_of's day,
# so a fact is inside it exactly when it is at most N days old.


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`: mappings merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out

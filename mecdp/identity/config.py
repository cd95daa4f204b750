"""Identifier-type rules for OneID: priority, per-person limit, unique types, blocklist.

The shipped rules are `identifier_types.yaml` (documented there); a workspace overrides them in
``<workspace>/identity.yaml`` (same layout: `types` entries replace the shipped entry of that
type field by field, `blocklist` values and patterns are added). Blocklist entries added at
run time (`mecdp identity split --blocklist`) live in the `identity_overrides` table.

Example:
    >>> rules = IdentityRules.load()
    >>> rules.rule("id_card_hash").unique, rules.rule("phone").limit
    (True, 3)
    >>> rules.is_blocklisted("phone", "+8613800000000")
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mecdp.errors import InputError

WORKSPACE_FILE = "identity.yaml"
MATCH_TYPE = "~match"  # virtual node of a probabilistic or reviewed link


@dataclass(frozen=True)
class TypeRule:
    id_type: str
    priority: int
    limit: int | None = None
    unique: bool = False

    @property
    def max_values(self) -> int | None:
        """How many different values one person may hold (unique types: one)."""
        if self.unique:
            return 1
        return self.limit


@dataclass(frozen=True)
class IdentityRules:
    types: dict[str, TypeRule]
    default: TypeRule
    blocked_values: dict[str, frozenset[str]] = field(default_factory=dict)
    blocked_patterns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Probabilistic matching: at or above `auto_threshold` merge, at or above
    # `review_threshold` ask a person (match probabilities, 0..1).
    auto_threshold: float = 0.99
    review_threshold: float = 0.8

    def rule(self, id_type: str) -> TypeRule:
        found = self.types.get(id_type)
        if found is not None:
            return found
        return TypeRule(id_type, self.default.priority, self.default.limit, self.default.unique)

    def is_blocklisted(self, id_type: str, value: str) -> bool:
        if value in self.blocked_values.get(id_type, frozenset()):
            return True
        return any(re.search(p, value) for p in self.blocked_patterns.get(id_type, ()))

    @classmethod
    def load(cls, workspace: Path | None = None) -> IdentityRules:
        """The shipped rules, overridden by `<workspace>/identity.yaml` when present."""
        text = resources.files("mecdp.identity").joinpath("identifier_types.yaml").read_text()
        data: dict[str, Any] = yaml.safe_load(text)
        if workspace is not None and (workspace / WORKSPACE_FILE).exists():
            override = yaml.safe_load((workspace / WORKSPACE_FILE).read_text()) or {}
            data = _merge(data, override)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IdentityRules:
        defaults = data.get("defaults") or {}
        default = _type_rule("*", defaults, TypeRule("*", 10))
        types = {
            name: _type_rule(name, spec or {}, default)
            for name, spec in (data.get("types") or {}).items()
        }
        blocklist = data.get("blocklist") or {}
        values = {
            t: frozenset(str(v) for v in vs) for t, vs in (blocklist.get("values") or {}).items()
        }
        patterns: dict[str, tuple[str, ...]] = {}
        for t, ps in (blocklist.get("patterns") or {}).items():
            for p in ps:
                try:
                    re.compile(p)
                except re.error as exc:
                    raise InputError(
                        f"blocklist pattern {p!r} of {t} is not a regular expression: {exc}",
                        field="blocklist.patterns",
                    ) from exc
            patterns[t] = tuple(str(p) for p in ps)
        matching = data.get("matching") or {}
        auto = float(matching.get("auto_threshold", 0.99))
        review = float(matching.get("review_threshold", 0.8))
        if not 0 < review <= auto <= 1:
            raise InputError(
                "matching thresholds need 0 < review_threshold <= auto_threshold <= 1",
                field="matching",
            )
        return cls(types, default, values, patterns, auto, review)

    def type_rows(self) -> list[dict[str, Any]]:
        """One row per configured type (for the SQL of the graph)."""
        return [
            {
                "id_type": r.id_type,
                "priority": r.priority,
                "max_values": r.max_values,
                "is_unique": r.unique,
            }
            for r in self.types.values()
        ]

    def blocklist_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {"id_type": t, "value": v, "pattern": None}
            for t, vs in self.blocked_values.items()
            for v in sorted(vs)
        ]
        rows += [
            {"id_type": t, "value": None, "pattern": p}
            for t, ps in self.blocked_patterns.items()
            for p in ps
        ]
        return rows


def _type_rule(name: str, spec: dict[str, Any], default: TypeRule) -> TypeRule:
    unknown = set(spec) - {"priority", "limit", "unique"}
    if unknown:
        raise InputError(
            f"identifier type {name}: unknown settings {sorted(unknown)}", field=f"types.{name}"
        )
    limit = spec.get("limit", default.limit)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"identifier type {name}: limit must be >= 1", field=f"types.{name}")
    return TypeRule(
        name,
        int(spec.get("priority", default.priority)),
        limit,
        bool(spec.get("unique", default.unique)),
    )


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    if "defaults" in override:
        out["defaults"] = {**(base.get("defaults") or {}), **override["defaults"]}
    types = {k: dict(v or {}) for k, v in (base.get("types") or {}).items()}
    for name, spec in (override.get("types") or {}).items():
        types[name] = {**types.get(name, {}), **(spec or {})}
    out["types"] = types
    blocklist: dict[str, dict[str, list[str]]] = {"values": {}, "patterns": {}}
    for source in (base.get("blocklist") or {}, override.get("blocklist") or {}):
        for part in ("values", "patterns"):
            for t, vs in (source.get(part) or {}).items():
                blocklist[part].setdefault(t, []).extend(vs)
    out["blocklist"] = blocklist
    out["matching"] = {**(base.get("matching") or {}), **(override.get("matching") or {})}
    return out

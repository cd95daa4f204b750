"""Golden-record rules: survivorship per trait and member levels.

The shipped rules are `profiles.yaml` (documented there); a workspace overrides them in
``<workspace>/profiles.yaml``.

Example:
    >>> rules = ProfileRules.load()
    >>> rules.traits["birthday"].rule, rules.traits["birthday"].priority[0]
    ('source_priority', 'his')
    >>> rules.level_for(1_500_000)
    'gold'
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from mecdp.errors import InputError

WORKSPACE_FILE = "profiles.yaml"
RULES = ("source_priority", "most_recent", "most_frequent")
TRAITS = ("name", "gender", "birthday", "city")


@dataclass(frozen=True)
class TraitRule:
    trait: str
    rule: str
    priority: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfileRules:
    traits: dict[str, TraitRule]
    levels: tuple[tuple[str, int], ...]  # (level, min_spend_fen), highest first

    @classmethod
    def load(cls, workspace: Path | None = None) -> ProfileRules:
        shipped = yaml.safe_load(
            resources.files("mecdp.profiles").joinpath("profiles.yaml").read_text("utf-8")
        )
        data: dict[str, Any] = dict(shipped)
        override = workspace / WORKSPACE_FILE if workspace else None
        if override is not None and override.is_file():
            extra = yaml.safe_load(override.read_text("utf-8")) or {}
            data["traits"] = {**shipped["traits"], **(extra.get("traits") or {})}
            if extra.get("levels"):
                data["levels"] = extra["levels"]
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileRules:
        traits: dict[str, TraitRule] = {}
        for trait, spec in (data.get("traits") or {}).items():
            if trait not in TRAITS:
                raise InputError(
                    f"unknown profile trait {trait!r}; one of: {', '.join(TRAITS)}",
                    field="traits",
                    value=trait,
                    rule="profiles.trait",
                )
            rule = str((spec or {}).get("rule", "most_recent"))
            if rule not in RULES:
                raise InputError(
                    f"unknown survivorship rule {rule!r} for {trait}; one of: {', '.join(RULES)}",
                    field=f"traits.{trait}.rule",
                    value=rule,
                    rule="profiles.rule",
                )
            priority = tuple(str(p) for p in (spec or {}).get("priority") or ())
            if rule == "source_priority" and not priority:
                raise InputError(
                    f"trait {trait} uses source_priority but lists no priority",
                    field=f"traits.{trait}.priority",
                    rule="profiles.priority",
                )
            traits[trait] = TraitRule(trait, rule, priority)
        for trait in TRAITS:
            traits.setdefault(trait, TraitRule(trait, "most_recent"))
        levels = sorted(
            ((str(x["level"]), int(x["min_spend_fen"])) for x in data.get("levels") or ()),
            key=lambda x: -x[1],
        )
        return cls(traits, tuple(levels))

    def level_for(self, total_spend_fen: int) -> str | None:
        for level, minimum in self.levels:
            if total_spend_fen >= minimum:
                return level
        return None

    # the rules as tables the build SQL joins ------------------------------------------------

    def trait_table(self) -> pa.Table:
        rows = [{"trait": t.trait, "rule": t.rule} for t in self.traits.values()]
        return pa.Table.from_pylist(
            rows, schema=pa.schema([("trait", pa.string()), ("rule", pa.string())])
        )

    def priority_table(self) -> pa.Table:
        rows = [
            {"trait": t.trait, "source_key": key, "rank": i}
            for t in self.traits.values()
            for i, key in enumerate(t.priority)
        ]
        return pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [("trait", pa.string()), ("source_key", pa.string()), ("rank", pa.int64())]
            ),
        )

    def level_table(self) -> pa.Table:
        rows = [{"level": level, "min_spend_fen": m} for level, m in self.levels]
        return pa.Table.from_pylist(
            rows, schema=pa.schema([("level", pa.string()), ("min_spend_fen", pa.int64())])
        )

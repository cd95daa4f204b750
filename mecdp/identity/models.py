"""OneID value types shared by the service, the API and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResolveReport:
    """What one full rebuild (`resolve_identities`) did."""

    records: int
    persons: int
    linked_edges: int
    ambiguous_identifiers: int
    blocklisted_edges: int
    conflicting_components: int
    merges: int
    splits: int
    match_auto: int = 0
    match_review: int = 0
    match_blocked: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Resolution:
    """An identifier or one_id resolved to the person that holds it now."""

    one_id: str | None
    status: str  # found, redirected, ambiguous, blocklisted, unknown
    redirected_from: str | None = None
    candidates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "candidates": list(self.candidates)}


@dataclass(frozen=True)
class StitchResult:
    """What `stitch_records` did to a batch of new records."""

    affected: tuple[str, ...]  # one_ids created, extended or surviving a merge
    created: int
    merged: int
    ambiguous: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "affected": list(self.affected)}

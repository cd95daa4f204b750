"""OneID routes: resolve, a person's identifiers (masked), graph, history, review, split, rebuild.

Views validate, call `mecdp.identity.service` and shape answers. Identifier values are masked
(`mecdp.privacy.masking`) unless the caller's role may see them for the purpose it declares;
an unmasked answer writes an audit row. Rebuilds, splits and review decisions change persons:
they take the `data.import` permission (admins) and are audited by the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from mecdp.api.deps import (
    MaskedReader,
    check_member_scope,
    head_file,
    record_audit,
    require,
)
from mecdp.api.state import AppState
from mecdp.identity import service
from mecdp.privacy.audit import AuditEntry
from mecdp.privacy.auth import Principal
from mecdp.privacy.masking import mask_value, unmasked_kinds
from mecdp.privacy.roles import Permission

IdentityAdmin = Annotated[Principal, require(Permission.DATA_IMPORT)]

# Identifier type -> masking kind (the rest are opaque platform ids).
MASK_KINDS = {"phone": "phone", "email": "email", "id_card_hash": "identifier"}


class SplitBody(BaseModel):
    action: Literal["remove_edge", "remove_identifier", "blocklist"]
    id_type: str = Field(max_length=64)
    id_value: str = Field(max_length=256)
    record_id: str | None = Field(default=None, max_length=256)
    reason: str | None = Field(default=None, max_length=500)


class ResolveBody(BaseModel):
    match: bool = True
    retrain: bool = False


def mask_identifier(id_type: str, value: str, visible: frozenset[str]) -> str:
    kind = MASK_KINDS.get(id_type, "identifier")
    if kind in visible and id_type != "id_card_hash":
        return value
    masked: str = mask_value(kind, value)
    return masked


def _mask_ref(text: str, visible: frozenset[str]) -> str:
    id_type, sep, value = text.partition(":")
    return f"{id_type}:{mask_identifier(id_type, value, visible)}" if sep else text


def _masked_history(events: list[dict[str, Any]], visible: frozenset[str]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        evidence = e["evidence"]
        if isinstance(evidence, list):
            evidence = [
                {
                    k: _mask_ref(v, visible)
                    if k in ("identifier", "other_identifier") and isinstance(v, str)
                    else v
                    for k, v in item.items()
                }
                if isinstance(item, dict)
                else item
                for item in evidence
            ]
        out.append({**e, "evidence": evidence})
    return out


def build_identity_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix="/v1/identity", tags=["identity"])

    def visible_for(principal: Principal, purpose: str | None, one_id: str, target: str) -> Any:
        visible = unmasked_kinds(principal.role, purpose)
        if visible:
            store_code = service.person_store(state.store.cursor(), one_id)
            check_member_scope(principal, store_code, f"person {one_id}")
            record_audit(
                state,
                AuditEntry(
                    actor=principal.actor,
                    actor_role=str(principal.role),
                    action="personal_data.read_unmasked",
                    target=target,
                    member_refs=[service.member_ref(one_id)],
                    purpose=purpose,
                ),
            )
        return visible

    @router.get("/resolve")
    def resolve(
        _: MaskedReader,
        ref: Annotated[str, Query(max_length=300, description="one_id or <type>:<value>")],
    ) -> dict[str, Any]:
        """The person behind an identifier or an (old) one_id."""
        return service.resolve(
            state.store.cursor(), ref, workspace=state.settings.workspace
        ).to_dict()

    @router.get("/persons/{one_id}/identifiers")
    def identifiers(
        one_id: str,
        principal: MaskedReader,
        purpose: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """A person's identifiers, masked unless the role may see them for `purpose`."""
        person = service.person_identifiers(state.store.cursor(), one_id)
        visible = visible_for(principal, purpose, person["one_id"], "identity.identifiers")
        for item in person["identifiers"]:
            item["id_value"] = mask_identifier(item["id_type"], item["id_value"], visible)
        return person

    @router.get("/persons/{one_id}/graph")
    def graph(
        one_id: str,
        principal: MaskedReader,
        purpose: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Explain a person: every edge with its status, why identifiers are linked."""
        found = service.explain(state.store.cursor(), one_id)
        visible = visible_for(principal, purpose, found["one_id"], "identity.graph")
        for edge in found["edges"]:
            edge["id_value"] = mask_identifier(edge["id_type"], edge["id_value"], visible)
        for link in found["links"]:
            for end in ("from", "to"):
                link[end]["id_value"] = mask_identifier(
                    link[end]["id_type"], link[end]["id_value"], visible
                )
        found["history"] = _masked_history(found["history"], visible)
        return found

    @router.get("/persons/{one_id}/history")
    def history(one_id: str, _: MaskedReader) -> list[dict[str, Any]]:
        """Merge history: merges, splits, reviews, with their evidence (values masked)."""
        return _masked_history(service.history(state.store.cursor(), one_id), frozenset())

    @router.get("/review")
    def review(
        _: MaskedReader,
        status: Literal["pending", "approved", "rejected", "auto", "blocked"] = "pending",
    ) -> list[dict[str, Any]]:
        """The review queue: probabilistic pairs between the two thresholds."""
        return service.list_review(state.store.cursor(), status=status)

    def decide(pair_id: str, principal: Principal, approve: bool) -> dict[str, Any]:
        return service.decide_review(
            state.store,
            pair_id,
            approve=approve,
            actor=principal.actor,
            actor_role=str(principal.role),
            workspace=state.settings.workspace,
            head_file=head_file(state),
        )

    @router.post("/review/{pair_id}/approve")
    def approve(pair_id: str, principal: IdentityAdmin) -> dict[str, Any]:
        """Merge the two persons of a reviewed pair."""
        return decide(pair_id, principal, True)

    @router.post("/review/{pair_id}/reject")
    def reject(pair_id: str, principal: IdentityAdmin) -> dict[str, Any]:
        """Keep the two persons apart; the pair is never proposed again."""
        return decide(pair_id, principal, False)

    @router.post("/split")
    def split(body: SplitBody, principal: IdentityAdmin) -> dict[str, Any]:
        """Unmerge: remove an edge or an identifier, or blocklist a value."""
        return service.split(
            state.store,
            action=body.action,
            id_type=body.id_type,
            id_value=body.id_value,
            record_id=body.record_id,
            reason=body.reason,
            actor=principal.actor,
            actor_role=str(principal.role),
            workspace=state.settings.workspace,
            head_file=head_file(state),
        ).to_dict()

    @router.post("/rebuild")
    def rebuild(body: ResolveBody, principal: IdentityAdmin) -> dict[str, Any]:
        """Full rebuild of the identity graph (and the probabilistic pass)."""
        return service.resolve_identities(
            state.store,
            workspace=state.settings.workspace,
            match=body.match,
            retrain=body.retrain,
            actor=principal.actor,
        ).to_dict()

    return router

"""Profile routes: the 360° view, timeline pages, trait history, member search, rebuild.

Views validate, call `mecdp.profiles.service` and shape answers. Personal values are masked
(`mecdp.privacy.masking`) unless the caller's role may see them for the purpose it declares
(``purpose=service`` for a consultant of the member's home store, ``data_subject_request``
for compliance); every unmasked answer writes a ``personal_data.read_unmasked`` audit row.
Treatments (sensitive medical data) are listed only for such an unmasked read and only with
the member's separate consent.

Masked answers of ``GET /v1/profiles/{ref}`` are kept in the server's serving cache
(`mecdp.profiles.serving`), and `ProfileFastPath`, in front of FastAPI, answers a repeated one
straight from it: same bytes, same authorisation, no store read and no FastAPI work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field
from starlette.types import Scope, Send

from mecdp.api.deps import (
    MaskedReader,
    bearer_token,
    check_member_scope,
    record_audit,
    require,
)
from mecdp.api.state import AppState
from mecdp.errors import InputError
from mecdp.privacy.audit import AuditEntry
from mecdp.privacy.auth import Principal
from mecdp.privacy.masking import READ_PURPOSES, unmasked_kinds
from mecdp.privacy.roles import Permission
from mecdp.profiles import personal, service
from mecdp.profiles.models import SEARCH_FIELDS, TIMELINE_KINDS

ProfileAdmin = Annotated[Principal, require(Permission.DATA_IMPORT)]
REF_DOC = "a one_id (OID00000042; merged ones redirect) or <id_type>:<value> (phone:13812345678)"
PURPOSE_DOC = (
    "why unmasked data is needed: service (consultant at a visit, own store) or "
    "data_subject_request (compliance); without it everything is masked"
)


@dataclass(frozen=True)
class Access:
    """What a caller may see of one person."""

    visible: frozenset[str]  # personal-data kinds shown unmasked
    medical: bool  # may see treatments (still needs the member's separate consent)


def check_purpose(purpose: str | None) -> None:
    if purpose is not None and purpose not in READ_PURPOSES:
        raise InputError(
            f"unknown purpose {purpose!r}; one of: {', '.join(READ_PURPOSES)}",
            field="purpose",
            value=purpose,
            rule="purpose.unknown",
        )


def visible_kinds(principal: Principal, purpose: str | None) -> frozenset[str]:
    """The personal-data kinds the caller may see unmasked for `purpose` (before the store
    scope check of `access_for`)."""
    check_purpose(purpose)
    if not principal.may(Permission.PERSONAL_DATA_UNMASKED):
        return frozenset()
    return unmasked_kinds(principal.role, purpose)


def access_for(state: AppState, principal: Principal, purpose: str | None, one_id: str) -> Access:
    """The caller's view of `one_id`: unmasked kinds for the purpose, store scope checked."""
    visible = visible_kinds(principal, purpose)
    if visible:
        store_code = service.person_store(state.store.cursor(), one_id)
        check_member_scope(principal, store_code, f"person {one_id}")
    return Access(visible, bool(visible))


def audit_unmasked(
    state: AppState,
    principal: Principal,
    purpose: str | None,
    one_id: str,
    target: str,
    *,
    sensitive: bool = False,
) -> None:
    record_audit(
        state,
        AuditEntry(
            actor=principal.actor,
            actor_role=str(principal.role),
            action="personal_data.read_unmasked",
            target=target,
            member_refs=[service.member_ref(one_id)],
            purpose=purpose,
            detail={"sensitive_medical": sensitive},
        ),
    )


# --------------------------------------------------------------------------- schemas


class TimelineItem(BaseModel):
    occurred_at: str = Field(description="UTC, ISO 8601")
    kind: str = Field(description=f"one of {', '.join(TIMELINE_KINDS)}")
    type: str | None = Field(description="event name type, interaction type, status, ...")
    channel: str | None
    store_code: str | None
    title: str | None
    amount_fen: int | None = Field(description="orders: paid amount in fen (CNY cents)")
    score: int | None = Field(description="feedback: NPS / rating")
    record_id: str
    source_id: str


class TimelinePublic(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")
    size: int
    kinds: list[str]
    channels: list[str]
    sensitive_included: bool = Field(description="treatments listed (consent and role allow)")


class ProfileTag(BaseModel):
    """A tag the member holds now (issue 6 layering)."""

    tag_id: str
    name_zh: str | None
    name_en: str | None
    category: str | None
    value_type: str | None = Field(description="boolean, enum or number")
    value: str = Field(description="'true' for boolean tags, the value for enum/number tags")
    since: str = Field(description="UTC, ISO 8601: when the member gained this value")


class ProfileScores(BaseModel):
    """The member's value and behaviour scores from the latest compute run."""

    as_of: str = Field(description="UTC, ISO 8601: the moment the scores describe")
    recency_days: int | None = Field(description="days since the last paid order")
    frequency: int
    monetary_fen: int
    r_score: int | None
    f_score: int | None
    m_score: int | None
    rfm_segment: str | None = Field(description="one of the eight RFM groups (English key)")
    value_tier: str | None = Field(description="high_value, potential, dormant")
    p_alive: float | None = Field(description="BG/NBD probability the member is still active")
    expected_purchases_90: float | None
    expected_purchases_180: float | None
    expected_purchases_365: float | None
    expected_value_365_fen: float | None
    clv_12m_fen: float | None = Field(description="12-month customer lifetime value (fen)")
    purchase_tier: str | None = Field(description="vip, promotion_driven, one_time, course, ...")
    interaction_tier: str | None = Field(description="high, low, none")
    interaction_channels: int | None
    interactions_90d: int | None
    preferred_category: str | None = Field(description="注射 光电 手术 皮肤管理 ...")


class ProfileTreatmentDue(BaseModel):
    """When a treatment is due again (sensitive medical data)."""

    item_code: str
    item_name: str | None
    category: str | None
    last_performed_at: str = Field(description="UTC, ISO 8601")
    cycle_days: int
    due_on: str = Field(description="date, ISO 8601")
    status: str = Field(description="upcoming, overdue, not_due")


class ProfilePublic(BaseModel):
    """The 360° view of one person."""

    one_id: str
    member_ref: str
    merged_from: list[str] = Field(description="one_ids merged into this person")
    identity: dict[str, Any] = Field(description="name, gender, birthday, city, phone, email")
    summary: dict[str, Any] = Field(
        description="home store, consultant, member level, preferred channel, first/last "
        "seen and order, orders, visits, total/average spend (fen), records"
    )
    traits: list[dict[str, Any]] = Field(
        description="chosen value per trait with rule, source, record and time"
    )
    identifiers: dict[str, list[dict[str, Any]]] = Field(description="by identifier type")
    course_cards: list[dict[str, Any]] = Field(description="疗程卡 balances")
    consents: list[dict[str, Any]] = Field(description="current state per purpose and channel")
    tags: list[ProfileTag] = Field(description="current tags (empty before `mecdp compute`)")
    scores: ProfileScores | None = Field(description="null before `mecdp compute`")
    treatment_due: list[ProfileTreatmentDue] | None = Field(
        description="due dates per treatment item: only for a caller who may see sensitive "
        "medical data (unmasked read for a declared purpose) of a member with the separate "
        "consent; null otherwise"
    )
    masked: bool
    timeline: TimelinePublic | None = None


class SearchHitPublic(BaseModel):
    one_id: str
    name: str | None
    phone: str | None
    gender: str | None
    member_level: str | None
    home_store: str | None
    last_seen: str | None
    matched_by: str
    extra: dict[str, Any]


# --------------------------------------------------------------------------- routes


def _json(content: Any) -> Response:
    """A pre-serialised JSON answer: the service shapes the view, validating it again against
    the response model per request would cost more than the lookup (the model documents it)."""
    return Response(orjson.dumps(content), media_type="application/json")


def remember_answer(
    state: AppState, ref: str, one_id: str, body: bytes, seq: int, *, indexed: bool
) -> None:
    """Keep a masked answer (read after the cache's `seq` was noted) for `ProfileFastPath`:
    under its one_id when that is what was asked for, or when the identifier resolved to it
    on the indexed profile tables (`indexed`; not through OneID's redirects or household
    rules)."""
    cache = state.serving
    if cache is None:
        return
    cur = state.store.cursor()
    id_type, value = service.parse_ref(ref)
    if id_type == "one_id":
        if value != one_id:  # a merged one_id redirected
            return
    elif indexed:
        stored = personal.stored_identifier(state.settings, id_type, value)
        cache.remember_person(cur, ref, one_id, stored, seq)
    else:
        return
    cache.remember_answer(cur, one_id, body, service.member_ref(one_id), seq)


class ProfileFastPath:
    """Answers ``GET /v1/profiles/{ref}`` (no query) for a masked reader whose token the
    server already knows, from the serving cache, before FastAPI sees the request (the app
    asks it first); everything else (a first lookup, an unknown token, a denied role,
    unmasked reads, errors) is left to FastAPI."""

    PREFIX = "/v1/profiles/"

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def answered(self, scope: Scope, send: Send) -> bool:
        """Whether the request was answered here."""
        if not (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and scope["path"].startswith(self.PREFIX)
        ):
            return False
        body = self._answer(scope, scope["path"][len(self.PREFIX) :])
        if body is None:
            return False
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    def _answer(self, scope: Scope, ref: str) -> bytes | None:
        cache = self.state.serving
        if cache is None or not ref or "/" in ref or len(ref) > MAX_REF:
            return None
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        if authorization is None:  # the console's cookie: the full path
            return None
        principal = self.state.principals.cached(bearer_token(authorization, None).strip())
        if (
            principal is None
            or not principal.may(Permission.PERSONAL_DATA_MASKED)
            or unmasked_kinds(principal.role, None)
        ):
            return None
        try:
            id_type, value = service.parse_ref(ref)
        except InputError:
            return None
        one_id = value if id_type == "one_id" else cache.person(ref)
        return cache.answer(one_id) if one_id is not None else None


MAX_REF = 300
RefPath = Annotated[str, Path(max_length=MAX_REF, description=REF_DOC)]
PurposeQuery = Annotated[str | None, Query(max_length=64, description=PURPOSE_DOC)]


def build_profiles_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix="/v1/profiles", tags=["profiles"])

    @router.get("/search", response_model=list[SearchHitPublic])
    def search(
        _: MaskedReader,
        q: Annotated[str, Query(min_length=1, max_length=200, description="what to look for")],
        by: Annotated[
            str,
            Query(
                description="auto, one_id, name, "
                + ", ".join(SEARCH_FIELDS)
                + " (auto guesses from the query)"
            ),
        ] = "auto",
    ) -> list[dict[str, Any]]:
        """Find members by phone, name, member number, WeChat or Douyin id (always masked)."""
        hits = service.search_members(state.store.cursor(), state.settings, q, field=by)
        return [service.mask_hit(h, frozenset()) for h in hits]

    @router.post("/build")
    def rebuild(_: ProfileAdmin) -> dict[str, Any]:
        """Full rebuild of every golden record (after `mecdp resolve`)."""
        return service.build_profiles(state.store, workspace=state.settings.workspace).to_dict()

    @router.get("/{ref}", response_model=ProfilePublic)
    def profile(
        ref: RefPath,
        principal: MaskedReader,
        purpose: PurposeQuery = None,
        timeline: Annotated[
            int, Query(ge=0, le=service.MAX_PAGE, description="first timeline page size")
        ] = 0,
    ) -> Response:
        """The 360° view: identity, traits with sources, identifiers, cards, consents, tags,
        scores and (for a caller who may see medical data) treatment due dates."""
        cur = state.store.cursor()
        if not visible_kinds(principal, purpose):
            # masked: no store scope to check, so a one_id goes straight to its document
            seq = state.serving.seq if state.serving is not None else 0
            # an identifier the profile tables resolve is looked up once, here: the answer
            # reads that person, and the cache may keep the resolution
            id_type, value = service.parse_ref(ref)
            indexed = (
                None
                if id_type == "one_id"
                else service.fast_person(cur, state.settings, id_type, value)
            )
            if indexed is not None:
                view = service.profile_view(cur, state.settings, indexed, timeline_size=timeline)
            else:
                view = service.view_by_ref(cur, state.settings, ref, timeline_size=timeline)
            body = orjson.dumps(service.mask_view(view, frozenset()))
            if state.serving is not None and not timeline:
                remember_answer(state, ref, view["one_id"], body, seq, indexed=indexed is not None)
            return Response(body, media_type="application/json")
        one_id = service.find_person(cur, state.settings, ref)
        access = access_for(state, principal, purpose, one_id)
        view = service.profile_view(
            cur, state.settings, one_id, medical=access.medical, timeline_size=timeline
        )
        sensitive = view["treatment_due"] is not None or bool(
            view.get("timeline", {}).get("sensitive_included")
        )
        audit_unmasked(state, principal, purpose, one_id, "profiles.view", sensitive=sensitive)
        return _json(service.mask_view(view, access.visible))

    @router.get("/{ref}/timeline", response_model=TimelinePublic)
    def timeline_page(
        ref: RefPath,
        principal: MaskedReader,
        purpose: PurposeQuery = None,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        size: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = service.DEFAULT_PAGE,
        kind: Annotated[
            list[str] | None, Query(description=f"filter: {', '.join(TIMELINE_KINDS)}")
        ] = None,
        channel: Annotated[list[str] | None, Query(description="filter by channel code")] = None,
    ) -> dict[str, Any]:
        """The merged timeline across every channel, newest first, one page at a time."""
        cur = state.store.cursor()
        one_id = service.find_person(cur, state.settings, ref)
        access = access_for(state, principal, purpose, one_id)
        page = service.timeline_page(
            cur,
            one_id,
            cursor=cursor,
            size=size,
            kinds=kind or (),
            channels=channel or (),
            medical=access.medical,
        )
        if page.sensitive_included:
            audit_unmasked(state, principal, purpose, one_id, "profiles.timeline", sensitive=True)
        return page.to_dict()

    @router.get("/{ref}/traits/history")
    def history(
        ref: RefPath, principal: MaskedReader, purpose: PurposeQuery = None
    ) -> list[dict[str, Any]]:
        """Every change of a chosen trait value, with its source and time."""
        cur = state.store.cursor()
        one_id = service.find_person(cur, state.settings, ref)
        access = access_for(state, principal, purpose, one_id)
        items = service.trait_history(cur, state.settings, one_id)
        if access.visible:
            audit_unmasked(state, principal, purpose, one_id, "profiles.trait_history")
        return service.mask_history(items, access.visible)

    return router

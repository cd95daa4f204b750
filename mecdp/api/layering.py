"""Member layering routes: tag definitions, previews, a tag's members and history, the tier
migration matrix, a member's layering, compute runs and the schedule.

Views validate, call `mecdp.compute.service` / `mecdp.compute.queries` and shape answers.
Member lists carry one_ids only. Treatment due dates are sensitive medical data (PIPL Art.
28): a member's are shown only to a role that may read personal data unmasked, for a
declared purpose, with the member's separate consent - and that read is audited, as in the
profile routes. Saving or deleting a tag definition writes an audit row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query
from pydantic import BaseModel, Field

from mecdp.api.deps import MaskedReader, head_file, require
from mecdp.api.profiles import PurposeQuery, access_for, audit_unmasked
from mecdp.api.state import AppState
from mecdp.compute import queries, service
from mecdp.compute.config import LayeringConfig
from mecdp.compute.scheduler import ComputeScheduler
from mecdp.compute.tags import TagDefinition
from mecdp.errors import InputError
from mecdp.privacy.audit import AuditEntry, append_audit, audited_transaction
from mecdp.privacy.auth import Principal
from mecdp.privacy.roles import Permission
from mecdp.profiles.service import find_person, may_see_treatments

AggregateReader = Annotated[Principal, require(Permission.AGGREGATES_READ)]
TagManager = Annotated[Principal, require(Permission.TAGS_MANAGE)]
TagIdPath = Annotated[str, Path(max_length=64, description="the tag's key, e.g. dormant")]
MomentQuery = Annotated[
    datetime | None, Query(description="UTC (or with an offset), ISO 8601; a date is 00:00")
]
LimitQuery = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]
OffsetQuery = Annotated[int, Query(ge=0)]

NO_MEDICAL_ROLE = "treatment due dates are sensitive medical data: this role may not see them"
NO_MEDICAL_PURPOSE = "treatment due dates need purpose=service (or data_subject_request)"
NO_MEDICAL_CONSENT = "the member has not given separate consent (单独同意) for sensitive data"


# --------------------------------------------------------------------------- schemas


class TagPublic(BaseModel):
    """A tag definition with its current members."""

    tag_id: str
    name_zh: str
    name_en: str
    description: str | None
    owner: str | None
    category: str
    value_type: str = Field(description="boolean, enum or number")
    refresh: str = Field(description="event, scheduled or manual")
    rule: dict[str, Any] = Field(description="the rule as written (kind + its fields)")
    version: int = Field(description="bumped whenever the rule changes")
    origin: str = Field(description="shipped, workspace, api or system")
    enabled: bool
    updated_at: str | None
    updated_by: str | None
    members: int = Field(description="members holding the tag now")
    values: dict[str, int] | None = Field(description="enum tags: members per value")
    value_labels: dict[str, dict[str, str]] = Field(
        description="system tags: zh/en label per value (RFM groups, tiers)"
    )


class TagPreviewPublic(BaseModel):
    tag_id: str
    as_of: str
    count: int = Field(description="members the rule selects (for enum/number: with a value)")
    sample: list[str] = Field(description="some of their one_ids")
    value_counts: dict[str, int] | None = Field(description="enum tags: members per value")


class TagMember(BaseModel):
    one_id: str
    value: str


class TagMembersPublic(BaseModel):
    tag_id: str
    value: str | None
    total: int
    limit: int
    offset: int
    members: list[TagMember]


class TagChangePublic(BaseModel):
    one_id: str
    change: str = Field(description="gained, lost or changed")
    value: str | None = Field(description="the value after the change (None when lost)")
    previous_value: str | None
    rule_version: int
    changed_at: str = Field(description="UTC")
    run_id: str = Field(description="the compute run (event:... for the stream path)")


class TagHistoryPublic(BaseModel):
    tag_id: str
    total: int
    limit: int
    offset: int
    items: list[TagChangePublic]


class MemberTag(BaseModel):
    tag_id: str
    name_zh: str | None
    name_en: str | None
    category: str | None
    value_type: str | None
    value: str
    since: str | None = Field(description="when the member gained this value (UTC)")


class MemberLayeringPublic(BaseModel):
    """One member's layering: scores, tags, why the RFM scores, treatment due dates."""

    one_id: str
    scores: dict[str, Any] | None = Field(description="the scores row (RFM, CLV, tiers)")
    tags: list[MemberTag]
    rfm_explanation: dict[str, Any] | None = Field(
        description="the member's R/F/M values and the cut-offs of the run that scored them"
    )
    run: dict[str, Any] | None = Field(description="the compute run behind the scores")
    treatment_due: list[dict[str, Any]] | None = Field(
        description="next-due date per treatment (sensitive; see treatment_due_note)"
    )
    treatment_due_note: str | None = Field(description="why treatment_due is left out")


class ComputeRequest(BaseModel):
    as_of: datetime | None = Field(
        default=None, description="compute as of this moment (UTC; default now)"
    )
    engine: Literal["duckdb", "spark"] | None = Field(
        default=None, description="batch engine (default: the engine setting)"
    )


class ComputeReportPublic(BaseModel):
    run_id: str
    as_of: str
    engine: str
    members: int
    tagged: int = Field(description="(member, tag) rows now current")
    tag_changes: int = Field(description="tag history rows this run appended")
    scores: int
    due: int = Field(description="treatment due-date rows")
    seconds: float
    stages: dict[str, float] = Field(description="seconds per stage")
    parameters: dict[str, Any] = Field(description="RFM cut-offs, CLV fit, tag rule versions")


class ComputeRunPublic(BaseModel):
    run_id: str
    started_at: str
    finished_at: str | None
    as_of: str
    scope: str = Field(description="all, tags or person")
    engine: str
    members: int | None
    status: str = Field(description="running, done or failed")
    stages: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None


class ScheduledRunPublic(BaseModel):
    trigger: str = Field(description="schedule or api")
    started_at: str | None
    finished_at: str | None
    status: str = Field(description="running, done or failed")
    run_id: str | None
    members: int | None
    seconds: float | None
    error: str | None


class SchedulePublic(BaseModel):
    """The compute scheduler of this server (runs of this process since it started)."""

    schedule: str = Field(description="the compute_schedule setting: daily@HH:MM, every:, off")
    timezone: str
    active: bool = Field(description="the schedule is running (false when off or stopped)")
    running: ScheduledRunPublic | None = Field(description="the run in progress")
    next_run_at: str | None = Field(description="UTC")
    next_run_local: str | None = Field(description="in the timezone setting, with offset")
    last_run: ScheduledRunPublic | None
    last_error: str | None
    runs_done: int
    runs_failed: int
    runs_skipped: int = Field(description="scheduled runs skipped: another run was going")
    recent: list[ScheduledRunPublic]


class TagDeletedPublic(BaseModel):
    deleted: str


class MigrationPublic(BaseModel):
    """Members by value of a tag at `start` (rows) and at `end` (columns)."""

    tag_id: str
    start: str
    end: str
    values: list[str | None] = Field(
        description="row and column order; null = without the tag (members without it at "
        "both moments are left out)"
    )
    matrix: list[list[int]] = Field(description="matrix[i][j]: from values[i] to values[j]")
    row_totals: list[int]
    column_totals: list[int]
    total: int
    moved: int = Field(description="members whose value changed")
    value_labels: dict[str, dict[str, str]] = Field(description="zh/en label per value")


# --------------------------------------------------------------------------- routes


def _definition_audit(principal: Principal, action: str, tag_id: str, **detail: Any) -> AuditEntry:
    return AuditEntry(
        actor=principal.actor,
        actor_role=str(principal.role),
        action=action,
        target=f"tag:{tag_id}",
        detail=detail or None,
    )


def build_layering_router(state: AppState, scheduler: ComputeScheduler) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["layering"])

    def config() -> LayeringConfig:
        return LayeringConfig.load(state.settings.workspace)

    # ------------------------------------------------------------------ tag definitions

    @router.get("/tags", response_model=list[TagPublic])
    def list_tags(_: AggregateReader) -> list[dict[str, Any]]:
        """Every tag definition with its member count (and members per value for enums)."""
        return queries.list_tags(state.store.cursor(), config())

    @router.post("/tags/preview", response_model=TagPreviewPublic)
    def preview(
        definition: TagDefinition, _: TagManager, as_of: MomentQuery = None
    ) -> dict[str, Any]:
        """Count and sample the members a definition selects, without saving anything."""
        return queries.preview_definition(state.store, definition, as_of)

    @router.get("/tags/{tag_id}", response_model=TagPublic)
    def get_tag(tag_id: TagIdPath, _: AggregateReader) -> dict[str, Any]:
        """One tag definition with its member counts."""
        return queries.get_tag(state.store.cursor(), tag_id, config())

    @router.put("/tags/{tag_id}", response_model=TagPublic)
    def save_tag(
        tag_id: TagIdPath, definition: TagDefinition, principal: TagManager
    ) -> dict[str, Any]:
        """Save a definition (it overrides a shipped or workspace one of the same key); its
        members follow at the next compute run (or event, for event-refresh tags)."""
        if definition.tag_id != tag_id:
            raise InputError(
                f"the body's tag_id {definition.tag_id!r} differs from the path's {tag_id!r}",
                field="tag_id",
                value=definition.tag_id,
            )
        with (
            service.WRITE_LOCK,
            audited_transaction(state.store, head_file=head_file(state)) as cur,
        ):
            version = service.save_definition(cur, definition, principal.actor)
            append_audit(cur, _definition_audit(principal, "tag.saved", tag_id, version=version))
        return queries.get_tag(state.store.cursor(), tag_id, config())

    @router.delete("/tags/{tag_id}", response_model=TagDeletedPublic)
    def delete_tag(tag_id: TagIdPath, principal: TagManager) -> dict[str, Any]:
        """Delete a definition saved through the API (shipped and workspace ones are
        disabled instead: PUT it with enabled false). Its members' rows go at the next run."""
        with (
            service.WRITE_LOCK,
            audited_transaction(state.store, head_file=head_file(state)) as cur,
        ):
            service.delete_definition(cur, tag_id)
            append_audit(cur, _definition_audit(principal, "tag.deleted", tag_id))
        return {"deleted": tag_id}

    # ------------------------------------------------------------------ members, history

    @router.get("/tags/{tag_id}/members", response_model=TagMembersPublic)
    def tag_members(
        tag_id: TagIdPath,
        _: MaskedReader,
        value: Annotated[str | None, Query(max_length=200)] = None,
        limit: LimitQuery = 100,
        offset: OffsetQuery = 0,
    ) -> dict[str, Any]:
        """The members holding a tag now: one_ids only, no personal data."""
        return queries.tag_members(
            state.store.cursor(), tag_id, value=value, limit=limit, offset=offset
        )

    @router.get("/tags/{tag_id}/history", response_model=TagHistoryPublic)
    def tag_history(
        tag_id: TagIdPath,
        _: MaskedReader,
        change: Literal["gained", "lost", "changed"] | None = None,
        value: Annotated[
            str | None, Query(max_length=200, description="value gained/changed to, or lost")
        ] = None,
        since: MomentQuery = None,
        until: MomentQuery = None,
        limit: LimitQuery = 100,
        offset: OffsetQuery = 0,
    ) -> dict[str, Any]:
        """Who gained, lost or changed a tag when: "who became 沉睡 this month" is
        ``change=gained&since=<first of the month>``."""
        return queries.tag_history(
            state.store.cursor(),
            tag_id,
            change=change,
            value=value,
            since=queries.utc_moment(since, "since") if since else None,
            until=queries.utc_moment(until, "until") if until else None,
            limit=limit,
            offset=offset,
        )

    # ------------------------------------------------------------------ layering

    @router.get("/layering/migration", response_model=MigrationPublic)
    def migration_matrix(
        _: AggregateReader,
        start: Annotated[datetime, Query(description="from this moment (UTC)")],
        end: Annotated[datetime, Query(description="to this moment (UTC)")],
        tag: Annotated[str, Query(max_length=64, description="an enum tag")] = "value_tier",
    ) -> dict[str, Any]:
        """The tier migration matrix: members by value at `start` × value at `end`."""
        return queries.migration(
            state.store.cursor(),
            tag,
            queries.utc_moment(start, "start"),
            queries.utc_moment(end, "end"),
            config(),
        )

    @router.get("/layering/members/{one_id}", response_model=MemberLayeringPublic)
    def member(
        one_id: Annotated[str, Path(max_length=300, description="a one_id (merged ones redirect)")],
        principal: MaskedReader,
        purpose: PurposeQuery = None,
    ) -> dict[str, Any]:
        """A member's scores, tags and RFM explanation; treatment due dates for a role and
        purpose that may see sensitive medical data, with the member's separate consent."""
        cur = state.store.cursor()
        person = find_person(cur, state.settings, one_id)
        access = access_for(state, principal, purpose, person)
        note = None
        medical = access.medical and may_see_treatments(cur, person)
        if not principal.may(Permission.PERSONAL_DATA_UNMASKED):
            note = NO_MEDICAL_ROLE
        elif not access.medical:
            note = NO_MEDICAL_PURPOSE
        elif not medical:
            note = NO_MEDICAL_CONSENT
        found = queries.member_layering(
            cur, person, medical=medical, workspace=state.settings.workspace
        )
        if medical:
            audit_unmasked(
                state, principal, purpose, person, "layering.treatment_due", sensitive=True
            )
        return {**found, "treatment_due_note": note}

    # ------------------------------------------------------------------ compute runs

    @router.post("/compute", response_model=ComputeReportPublic)
    def compute(principal: TagManager, body: ComputeRequest | None = None) -> dict[str, Any]:
        """Recompute every tag, score, tier and due date now (in the server, which owns the
        store); 409 while another run is in progress."""
        request = body or ComputeRequest()
        report = scheduler.run_now(
            as_of=queries.utc_moment(request.as_of, "as_of") if request.as_of else None,
            engine=request.engine,
            user=principal.actor,
        )
        return report.to_dict()

    @router.get("/compute/runs", response_model=list[ComputeRunPublic])
    def runs(_: AggregateReader, limit: LimitQuery = 20) -> list[dict[str, Any]]:
        """Recent compute runs, newest first, with the seconds per stage."""
        return queries.recent_runs(state.store.cursor(), limit)

    @router.get("/compute/runs/{run_id}", response_model=ComputeRunPublic)
    def run(run_id: Annotated[str, Path(max_length=100)], _: AggregateReader) -> dict[str, Any]:
        """One run with the parameters that explain its scores."""
        return queries.get_run(state.store.cursor(), run_id)

    @router.get("/compute/schedule", response_model=SchedulePublic)
    def schedule(_: AggregateReader) -> dict[str, Any]:
        """The scheduler in this server: schedule, next run, last run and last error."""
        return scheduler.status()

    return router


def install_layering(app: FastAPI, state: AppState) -> ComputeScheduler:
    """Include the layering routes and add the compute scheduler to the server's workers."""
    scheduler = ComputeScheduler(state.store, state.settings)
    state.workers.append(scheduler)
    app.include_router(build_layering_router(state, scheduler))
    app.state.compute_scheduler = scheduler
    return scheduler


__all__ = ["build_layering_router", "install_layering"]

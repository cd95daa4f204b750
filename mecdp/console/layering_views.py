"""Console pages for member layering (会员分层), for the CRM operator (会员运营).

* ``/console/layering``: the latest compute run with a 立即计算 button, the value tiers
  高价值/潜力/休眠, the eight RFM groups, purchase and interaction tiers (counts, share bars,
  spend) and the members with treatments 即将到期/已过期;
* ``/console/layering/tags`` and ``/console/layering/tags/{tag_id}``: the tag catalogue by
  category, and one tag's definition, value counts, recent changes, gains this month and
  its members (one_ids linking to the profile page; no personal data here);
* ``/console/layering/migration``: the tier migration matrix between two dates.

Reads go through `mecdp.compute.queries` (the JSON API's helpers) plus two small aggregate
reads of ``scores`` and ``compute_runs``; the compute button goes through the server's
`ComputeScheduler`, the same gate as ``POST /v1/compute``. Aggregates need
``aggregates.read`` (a role without it gets the console's error page, 403); member lists
``personal_data.read_masked``; computing ``tags.manage``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import duckdb
import yaml
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mecdp.api.deps import SESSION_COOKIE, current_principal, require
from mecdp.api.errors import error_response
from mecdp.api.state import AppState
from mecdp.compute import queries
from mecdp.compute.config import LayeringConfig
from mecdp.compute.scheduler import ComputeScheduler
from mecdp.console.formatting import SHANGHAI
from mecdp.console.messages import translate
from mecdp.console.views import PREFIX as CONSOLE_PREFIX
from mecdp.console.views import Console, wants_html
from mecdp.errors import Conflict, InputError, MeCdpError, PermissionDenied
from mecdp.privacy.auth import Principal
from mecdp.privacy.roles import Permission

PREFIX = f"{CONSOLE_PREFIX}/layering"
# The layers a compute run keeps as enum tags, in the order the overview shows them.
TIER_TAGS = ("value_tier", "rfm_segment", "purchase_tier", "interaction_tier")
MONEY_TIERS = frozenset({"value_tier", "rfm_segment"})
DUE_TAGS = (("treatment_due_soon", "upcoming"), ("treatment_overdue", "overdue"))
CATEGORY_ORDER = ("value", "lifecycle", "purchase", "interaction", "preference", "treatment")
HISTORY_ROWS = 20
MEMBER_PAGE = 50
_COMPUTE_FORM = b"console.layering.compute"

AggregateReader = Annotated[Principal, require(Permission.AGGREGATES_READ)]
TagManager = Annotated[Principal, require(Permission.TAGS_MANAGE)]
TierTag = Literal["value_tier", "rfm_segment", "purchase_tier", "interaction_tier"]
DateText = Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (Asia/Shanghai)")]


# --------------------------------------------------------------------------- reads


def tier_breakdown(cur: duckdb.DuckDBPyConnection) -> dict[str, dict[str, dict[str, Any]]]:
    """Per layer (`TIER_TAGS`) and value: members, spend in the RFM window (fen) and the
    average 12-month CLV (fen, None without a CLV fit), from ``scores`` in one scan."""
    layer = " ".join(f"WHEN GROUPING({c}) = 0 THEN '{c}'" for c in TIER_TAGS)
    rows = cur.execute(
        f"SELECT CASE {layer} END, coalesce({', '.join(TIER_TAGS)}), count(*), "
        "sum(monetary_fen), avg(clv_12m_fen) FROM scores "
        f"GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in TIER_TAGS)})"
    ).fetchall()
    out: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in TIER_TAGS}
    for kind, value, members, spend, clv in rows:
        if value is None:  # not layered (no scores value)
            continue
        out[str(kind)][str(value)] = {
            "members": int(members),
            "spend_fen": int(spend or 0),
            "avg_clv_fen": None if clv is None else round(float(clv)),
        }
    return out


def tag_counts(cur: duckdb.DuckDBPyConnection, tag_ids: Sequence[str]) -> dict[str, int]:
    """Members holding each tag now."""
    marks = ", ".join("?" for _ in tag_ids)
    rows = cur.execute(
        f"SELECT tag_id, count(*) FROM customer_tags WHERE tag_id IN ({marks}) GROUP BY tag_id",
        list(tag_ids),
    ).fetchall()
    found = {str(t): int(n) for t, n in rows}
    return {t: found.get(t, 0) for t in tag_ids}


def run_span(cur: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """as_of of the first and the latest finished full compute run (naive UTC)."""
    row = cur.execute(
        "SELECT min(as_of), max(as_of) FROM compute_runs WHERE status = 'done' AND scope = 'all'"
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


# --------------------------------------------------------------------------- shaping


def shanghai_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of a stored (naive UTC) moment."""
    return moment.replace(tzinfo=UTC).astimezone(SHANGHAI).date()


def end_of_day(day: date) -> datetime:
    """The last moment of `day` in Asia/Shanghai, as the store keeps times (naive UTC)."""
    midnight = datetime.combine(day + timedelta(days=1), time(), tzinfo=SHANGHAI)
    return midnight.astimezone(UTC).replace(tzinfo=None) - timedelta(microseconds=1)


def month_start(moment: datetime) -> datetime:
    """The first moment of `moment`'s Asia/Shanghai month (naive UTC)."""
    local = moment.replace(tzinfo=UTC).astimezone(SHANGHAI)
    first = datetime.combine(local.date().replace(day=1), time(), tzinfo=SHANGHAI)
    return first.astimezone(UTC).replace(tzinfo=None)


def parse_day(text: str | None, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{field}: {text!r} is not a date (YYYY-MM-DD)", field=field, value=text
        ) from None


def ordered_values(config: LayeringConfig, kind: str, seen: Sequence[str]) -> list[str]:
    """Values in the order of their labels in layering.yaml, then any others sorted."""
    listed = list(config.labels.get(kind, {}))
    return [*listed, *sorted(set(seen) - set(listed))]


def share_rows(
    config: LayeringConfig, kind: str, counts: dict[str, dict[str, Any]], lang: str
) -> list[dict[str, Any]]:
    """A layer's rows for the share bars: label, members, share (%) and spend figures."""
    total = sum(v["members"] for v in counts.values())
    rows = []
    for value in ordered_values(config, kind, list(counts)):
        found = counts.get(value, {"members": 0, "spend_fen": 0, "avg_clv_fen": None})
        members = int(found["members"])
        rows.append(
            {
                "value": value,
                "label": config.label(kind, value, label_lang(lang)),
                "members": members,
                "share": 100.0 * members / total if total else 0.0,
                "spend_fen": found["spend_fen"],
                "avg_spend_fen": round(found["spend_fen"] / members) if members else None,
                "avg_clv_fen": found["avg_clv_fen"],
                "tier": (
                    config.label("value_tier", config.rfm.tier_of_segment[value], label_lang(lang))
                    if kind == "rfm_segment" and value in config.rfm.tier_of_segment
                    else None
                ),
            }
        )
    return rows


def label_lang(lang: str) -> str:
    """The console language as a layering.yaml label language (zh, en)."""
    return "en" if lang == "en" else "zh"


def duration(run: dict[str, Any], lang: str) -> str | None:
    """How long a run took: 12.3 秒, 2 分 5 秒."""
    if not run.get("finished_at"):
        return None
    seconds = (
        datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
    ).total_seconds()
    if seconds < 60:
        return translate(lang, "layering.duration.seconds").format(s=f"{seconds:.1f}")
    minutes, rest = divmod(round(seconds), 60)
    return translate(lang, "layering.duration.minutes").format(m=minutes, s=rest)


class _RuleDumper(yaml.SafeDumper):
    """YAML with multi-line text (expert SQL) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleDumper.add_representer(str, _text)


# The order people write a rule's fields in (tags.yaml); the store keeps them sorted.
_RULE_FIELDS = ("kind", "fact", "sources", "of", "where", "window_days", "measure", "by")
_NESTED_RULES = ("rule", "rules")


def readable_rule(rule: Any) -> Any:
    """`rule` with `kind` and the usual fields first, nested rules last; unset fields (null,
    an empty `where`) left out."""
    if isinstance(rule, list):
        return [readable_rule(r) for r in rule]
    if not isinstance(rule, dict):
        return rule
    rank = {k: i for i, k in enumerate(_RULE_FIELDS)}

    def order(key: str) -> tuple[int, int, str]:
        return (key in _NESTED_RULES, rank.get(key, len(rank)), key)

    return {
        k: readable_rule(rule[k])
        for k in sorted(rule, key=order)
        if rule[k] is not None and not (k == "where" and not rule[k])
    }


def rule_yaml(rule: dict[str, Any]) -> str:
    """A tag rule as people read it: YAML like tags.yaml, Chinese kept as is."""
    return yaml.dump(
        readable_rule(rule),
        Dumper=_RuleDumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
    )


def compute_token(request: Request) -> str:
    """The compute form's token: bound to the session, so another site cannot post it."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(session.encode(), _COMPUTE_FORM, hashlib.sha256).hexdigest()


def category_label(lang: str, category: str) -> str:
    """The console name of a tag category; a category of the workspace's own as written."""
    key = f"tags.category.{category}"
    found = translate(lang, key)
    return category if found == key else found


def category_groups(
    tags: list[dict[str, Any]], lang: str
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(category, its label, tags): the usual categories first, then others by name."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for tag in tags:
        groups.setdefault(str(tag["category"]), []).append(tag)
    rank = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    ordered = sorted(groups.items(), key=lambda g: (rank.get(g[0], len(rank)), g[0]))
    return [(c, category_label(lang, c), items) for c, items in ordered]


# --------------------------------------------------------------------------- routes


def install_layering_console(app: FastAPI, state: AppState) -> None:
    """Add the layering pages (after `install_layering`, whose scheduler the button uses)."""
    scheduler: ComputeScheduler = app.state.compute_scheduler
    console = Console(state)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def config() -> LayeringConfig:
        return LayeringConfig.load(state.settings.workspace)

    def error_page(request: Request, principal: Principal | None, exc: MeCdpError) -> HTMLResponse:
        return console.render(
            request,
            "error.html",
            status_code=exc.status_code,
            principal=principal,
            message=exc.message,
        )

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PermissionDenied)  # noqa: S101 - registered for it only
        if not (request.url.path.startswith(PREFIX) and wants_html(request)):
            return error_response(exc)
        try:
            principal = current_principal(request, state, request.headers.get("authorization"))
        except MeCdpError:
            principal = None
        message = translate(console.lang(request), "layering.forbidden")
        return error_page(request, principal, PermissionDenied(message))

    app.add_exception_handler(PermissionDenied, forbidden)

    def overview_page(
        request: Request,
        principal: Principal,
        *,
        status_code: int = 200,
        notice: str | None = None,
        computed: str | None = None,
    ) -> HTMLResponse:
        cur = state.store.cursor()
        lang = console.lang(request)
        rules = config()
        breakdown = tier_breakdown(cur)
        runs = queries.recent_runs(cur, 1)
        run = runs[0] if runs else None
        due_counts = tag_counts(cur, [t for t, _ in DUE_TAGS])
        layers: list[dict[str, Any]] = [
            {
                "kind": kind,
                "rows": share_rows(rules, kind, breakdown[kind], lang),
                "money": kind in MONEY_TIERS,
            }
            for kind in TIER_TAGS
        ]
        return console.render(
            request,
            "layering.html",
            status_code=status_code,
            principal=principal,
            tab="overview",
            run=run,
            run_duration=duration(run, lang) if run else None,
            schedule=scheduler.status(),
            layers=layers,
            layered=sum(r["members"] for r in layers[0]["rows"]),
            window_days=rules.rfm.window_days,
            due=[
                {
                    "tag_id": tag_id,
                    "label": rules.label("due_status", status, label_lang(lang)),
                    "members": due_counts[tag_id],
                }
                for tag_id, status in DUE_TAGS
            ],
            can_compute=principal.may(Permission.TAGS_MANAGE),
            compute_token=compute_token(request),
            notice=notice,
            computed=computed,
        )

    @router.get("")
    def overview(
        request: Request,
        principal: AggregateReader,
        computed: Annotated[str | None, Query(max_length=100)] = None,
    ) -> HTMLResponse:
        return overview_page(request, principal, computed=computed)

    @router.post("/compute")
    def compute(
        request: Request,
        principal: TagManager,
        token: Annotated[str, Form(max_length=200)],
    ) -> Response:
        if not hmac.compare_digest(token, compute_token(request)):
            message = translate(console.lang(request), "layering.compute.bad_token")
            return error_page(request, principal, InputError(message, field="token"))
        try:
            report = scheduler.run_now(user=principal.actor)
        except Conflict:
            notice = translate(console.lang(request), "layering.compute.busy")
            return overview_page(request, principal, status_code=409, notice=notice)
        except MeCdpError as exc:
            return error_page(request, principal, exc)
        return RedirectResponse(
            f"{PREFIX}?{urlencode({'computed': report.run_id})}", status_code=303
        )

    @router.get("/tags")
    def tag_catalogue(request: Request, principal: AggregateReader) -> HTMLResponse:
        found = queries.list_tags(state.store.cursor(), config())
        return console.render(
            request,
            "tags.html",
            principal=principal,
            tab="tags",
            groups=category_groups(found, console.lang(request)),
        )

    @router.get("/tags/{tag_id}")
    def tag_detail(
        request: Request,
        tag_id: str,
        principal: AggregateReader,
        value: Annotated[str | None, Query(max_length=200)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        cur = state.store.cursor()
        lang = console.lang(request)
        try:
            tag = queries.get_tag(cur, tag_id, config())
        except MeCdpError as exc:
            return error_page(request, principal, exc)
        latest = run_span(cur)[1]
        month = month_start(latest) if latest else None
        gained = (
            queries.tag_history(cur, tag_id, change="gained", since=month, limit=1)["total"]
            if month
            else 0
        )
        may_list = principal.may(Permission.PERSONAL_DATA_MASKED)
        members = history = None
        if may_list:
            members = queries.tag_members(
                cur, tag_id, value=value or None, limit=MEMBER_PAGE, offset=offset
            )
            history = queries.tag_history(cur, tag_id, limit=HISTORY_ROWS)["items"]
        labels = tag["value_labels"]

        def value_label(raw: str | None) -> str:
            if raw is None:
                return "—"
            if raw in labels:
                return str(labels[raw]["en" if lang == "en" else "zh"])
            if tag["value_type"] == "boolean" and raw == "true":
                return translate(lang, "tags.true")
            return raw

        counts: dict[str, int] = tag["values"] or {}
        values = [
            {
                "value": v,
                "label": value_label(v),
                "members": counts.get(v, 0),
                "share": 100.0 * counts.get(v, 0) / tag["members"] if tag["members"] else 0.0,
            }
            for v in (ordered_values(config(), tag_id, list(counts)) if labels else counts)
        ]
        base = f"{PREFIX}/tags/{tag_id}"

        def page_url(at: int) -> str:
            params = {k: v for k, v in (("value", value), ("offset", at)) if v}
            return f"{base}?{urlencode(params)}#members" if params else f"{base}#members"

        return console.render(
            request,
            "tags_detail.html",
            principal=principal,
            tab="tags",
            tag=tag,
            category_label=category_label(lang, str(tag["category"])),
            rule_text=rule_yaml(tag["rule"]),
            values=values if tag["value_type"] == "enum" else None,
            value_label=value_label,
            value=value or "",
            gained_month=gained,
            month=shanghai_date(latest).strftime("%Y-%m") if latest else None,
            may_list=may_list,
            members=members,
            history=history,
            base_url=base,
            next_url=(
                page_url(offset + MEMBER_PAGE)
                if members and offset + MEMBER_PAGE < members["total"]
                else None
            ),
            prev_url=page_url(max(offset - MEMBER_PAGE, 0)) if offset else None,
        )

    @router.get("/migration")
    def migration(
        request: Request,
        principal: AggregateReader,
        tag: Annotated[TierTag, Query()] = "value_tier",
        start: DateText = None,
        end: DateText = None,
    ) -> HTMLResponse:
        cur = state.store.cursor()
        lang = console.lang(request)
        rules = config()
        first, latest = run_span(cur)
        error: str | None = None
        matrix: dict[str, Any] | None = None
        start_day: date | None = None
        end_day: date | None = None
        try:
            start_day = parse_day(start, "start") or (shanghai_date(first) if first else None)
            end_day = parse_day(end, "end") or (shanghai_date(latest) if latest else None)
            if start_day and end_day:
                matrix = queries.migration(
                    cur, tag, end_of_day(start_day), end_of_day(end_day), rules
                )
        except MeCdpError as exc:
            error = exc.message

        def value_label(raw: str | None) -> str:
            if raw is None:
                return translate(lang, "layering.migration.without")
            return rules.label(tag, raw, label_lang(lang))

        return console.render(
            request,
            "layering_migration.html",
            status_code=400 if error else 200,
            principal=principal,
            tab="migration",
            tags=TIER_TAGS,
            tag=tag,
            start=start_day.isoformat() if start_day else "",
            end=end_day.isoformat() if end_day else "",
            matrix=matrix,
            value_label=value_label,
            has_runs=latest is not None,
            error=error,
        )

    app.include_router(router)

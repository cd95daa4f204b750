"""The web console's first pages: login, member search and the 360° profile page.

Server-rendered Jinja2 templates with a little vanilla JS and CSS, all served by the app
(docs/console.md explains the choice). Pages are Chinese first (``?lang=en`` switches and
is remembered in a cookie); times are shown in Asia/Shanghai and money as ¥ with 万.

Every page declares a permission like any API route (`mecdp.api.deps.require`); a browser
that is not logged in is sent to the login page, other clients get the JSON 401. Personal
data is masked unless the caller is a consultant of the member's home store (purpose
``service``); those unmasked views are audited like the API's.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mecdp.api.deps import PUBLIC, SESSION_COOKIE, MaskedReader, SessionUser, client_ip
from mecdp.api.deps import record_audit as write_audit
from mecdp.api.errors import error_response
from mecdp.api.profiles import audit_unmasked
from mecdp.api.state import AppState
from mecdp.compute.config import LayeringConfig
from mecdp.console.formatting import format_money, format_time
from mecdp.console.messages import LANG_COOKIE, pick_lang, translate
from mecdp.errors import AuthenticationError, MeCdpError, NotFound
from mecdp.privacy import auth
from mecdp.privacy.audit import AuditEntry
from mecdp.privacy.auth import Principal
from mecdp.privacy.masking import SERVICE, unmasked_kinds
from mecdp.privacy.roles import Permission, Role
from mecdp.profiles import service
from mecdp.profiles.models import SEARCH_FIELDS, TIMELINE_KINDS

PREFIX = "/console"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
TIMELINE_PAGE = 15


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mecdp.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["money"] = format_money
    env.filters["time"] = format_time
    env.filters["date"] = lambda v: format_time(v, with_time=False)
    return env


def _safe_next(target: str | None) -> str:
    if target and target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target:
        return target
    return f"{PREFIX}/members"


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


class Console:
    """Renders pages with the request's language."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.env = _environment()

    def lang(self, request: Request) -> str:
        return pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        principal: Principal | None = None,
        **context: Any,
    ) -> HTMLResponse:
        lang = self.lang(request)

        def t(key: str) -> str:
            return translate(lang, key)

        def switch_url() -> str:
            params = dict(request.query_params)
            params["lang"] = "en" if lang != "en" else "zh-CN"
            return f"{request.url.path}?{urlencode(params)}"

        html = self.env.get_template(template).render(
            t=t,
            lang=lang,
            switch_url=switch_url(),
            principal=principal,
            money=lambda fen: format_money(fen, lang=lang),
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
        return response


def install_console(app: FastAPI, state: AppState) -> None:
    """Add the console routes and send browsers without a session to the login page."""
    console = Console(state)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def auth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthenticationError)  # noqa: S101 - registered for it only
        if request.url.path.startswith(PREFIX) and wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
        return error_response(exc)

    app.add_exception_handler(AuthenticationError, auth_error)

    @router.get("", dependencies=[PUBLIC])
    def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/members", status_code=303)

    @router.get("/static/{name}", dependencies=[PUBLIC])
    def static(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in STATIC_TYPES:
            raise NotFound(f"no console asset {name!r}")
        asset = resources.files("mecdp.console").joinpath("static", name)
        if not asset.is_file():
            raise NotFound(f"no console asset {name!r}")
        return Response(
            asset.read_bytes(),
            media_type=STATIC_TYPES[suffix],
            headers={"Cache-Control": "max-age=3600"},
        )

    @router.get("/login", dependencies=[PUBLIC])
    def login_page(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
        return console.render(request, "login.html", next=_safe_next(next), error=None)

    @router.post("/login", dependencies=[PUBLIC])
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=63)],
        password: Annotated[str, Form(max_length=200)],
        next: Annotated[str | None, Form(max_length=500)] = None,  # noqa: A002
    ) -> Response:
        ip = client_ip(request)
        try:
            token, expires, _ = auth.login(
                state.store.cursor(), state.settings, username, password, ip
            )
        except (AuthenticationError, auth.TooManyAttempts) as exc:
            throttled = isinstance(exc, auth.TooManyAttempts)
            write_audit(
                state,
                AuditEntry(
                    actor=username,
                    action="auth.login_throttled" if throttled else "auth.login_failed",
                    outcome="denied",
                    detail={"client_ip": ip, "via": "console"},
                ),
            )
            return console.render(
                request,
                "login.html",
                status_code=429 if throttled else 401,
                next=_safe_next(next),
                error="login.throttled" if throttled else "login.failed",
            )
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=state.settings.session_ttl_minutes * 60,
            httponly=True,
            samesite="lax",
            path="/",
        )
        return response

    @router.post("/logout")
    def logout(principal: SessionUser) -> Response:
        auth.logout(state.store.cursor(), principal)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/members")
    def members(
        request: Request,
        principal: MaskedReader,
        q: Annotated[str | None, Query(max_length=200)] = None,
        by: Annotated[str, Query(max_length=20)] = "auto",
    ) -> HTMLResponse:
        hits: list[dict[str, Any]] | None = None
        error = None
        if q and q.strip():
            try:
                found = service.search_members(state.store.cursor(), state.settings, q, field=by)
                hits = [service.mask_hit(h, frozenset()) for h in found]
            except MeCdpError as exc:
                error = exc.message
        return console.render(
            request,
            "members.html",
            principal=principal,
            q=q or "",
            by=by,
            fields=["auto", "phone", "name", "member_no", *list(SEARCH_FIELDS)[2:], "one_id"],
            hits=hits,
            error=error,
        )

    @router.get("/members/{one_id}")
    def profile_page(
        request: Request,
        one_id: str,
        principal: MaskedReader,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        kind: Annotated[str | None, Query(max_length=20)] = None,
        channel: Annotated[str | None, Query(max_length=40)] = None,
    ) -> HTMLResponse:
        cur = state.store.cursor()
        try:
            person = service.find_person(cur, state.settings, one_id)
            visible, other_store = _console_access(state, principal, person)
            view = service.profile_view(cur, state.settings, person, medical=bool(visible))
            page = service.timeline_page(
                cur,
                person,
                cursor=cursor,
                size=TIMELINE_PAGE,
                kinds=[kind] if kind else (),
                channels=[channel] if channel else (),
                medical=bool(visible),
            )
        except MeCdpError as exc:
            return console.render(
                request,
                "error.html",
                status_code=exc.status_code,
                principal=principal,
                message=exc.message,
            )
        if visible:
            audit_unmasked(
                state,
                principal,
                SERVICE,
                person,
                "console.profile",
                sensitive=page.sensitive_included or view["treatment_due"] is not None,
            )
        base = f"{PREFIX}/members/{person}"
        filters = {k: v for k, v in (("kind", kind), ("channel", channel)) if v}
        next_url = (
            f"{base}?{urlencode({**filters, 'cursor': page.next_cursor})}"
            if page.next_cursor
            else None
        )
        return console.render(
            request,
            "profile.html",
            principal=principal,
            view=service.mask_view(view, visible),
            page=page.to_dict(),
            kinds=TIMELINE_KINDS,
            channels=service.timeline_channels(cur, person),
            kind=kind or "",
            channel=channel or "",
            next_url=next_url,
            first_url=f"{base}?{urlencode(filters)}" if cursor else None,
            other_store=other_store,
            base_url=base,
            label=_layering_label(state, console.lang(request)),
        )

    app.include_router(router)


def _layering_label(state: AppState, lang: str) -> Callable[[str, str | None], str]:
    """label(kind, key): the console label of a layering output key (RFM group, tiers, due
    status, a system tag's value) from layering.yaml, in the page's language."""
    config = LayeringConfig.load(state.settings.workspace)
    label_lang = "en" if lang == "en" else "zh"

    def label(kind: str, key: str | None) -> str:
        return "—" if key is None else config.label(kind, key, label_lang)

    return label


def _console_access(
    state: AppState, principal: Principal, one_id: str
) -> tuple[frozenset[str], bool]:
    """(kinds shown unmasked, member of another store): consultants see their own store's
    members unmasked for service; everyone else sees masked data in the console."""
    if principal.role is not Role.CONSULTANT or not principal.may(
        Permission.PERSONAL_DATA_UNMASKED
    ):
        return frozenset(), False
    store_code = service.person_store(state.store.cursor(), one_id)
    if store_code is None or store_code != principal.store_code:
        return frozenset(), True
    return unmasked_kinds(principal.role, SERVICE), False

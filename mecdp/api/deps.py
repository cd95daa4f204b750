"""Dependencies shared by the routers: the app state, the caller, and per-route permissions.

Every route declares exactly one of:

* ``require(Permission.X)`` - an authenticated user, API key or the admin token whose role
  has permission X (`mecdp.privacy.roles.ROLE_PERMISSIONS`);
* ``PUBLIC`` - no credentials (health check, login, the status page);
* the collector scope - paths served by the collector middleware with a write key
  (`mecdp.collect.api`); write keys authenticate nothing else.

The declaration is recorded on the dependency (``__mecdp_permission__``) so the
authorisation matrix test can read it off every route and check it against the role table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from mecdp.api.state import AppState
from mecdp.errors import PermissionDenied
from mecdp.privacy.audit import HEAD_FILE, AuditEntry, audit
from mecdp.privacy.auth import Principal
from mecdp.privacy.roles import Permission, Role

PERMISSION_ATTR = "__mecdp_permission__"
PUBLIC_SCOPE = "public"
COLLECTOR_SCOPE = "collector"
SESSION_COOKIE = "mecdp_session"
# Permissions whose denial is written to the audit log: they guard personal data.
AUDITED_DENIALS = frozenset(
    {
        Permission.PERSONAL_DATA_MASKED,
        Permission.PERSONAL_DATA_UNMASKED,
        Permission.EXPORT,
        Permission.CONSENT_READ,
        Permission.CONSENT_WRITE,
        Permission.AUDIT_READ,
        Permission.DATA_SUBJECT_REQUESTS,
    }
)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mecdp
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def head_file(state: AppState) -> Path:
    """Where the audit chain head of this workspace is anchored."""
    return state.settings.secrets_dir / HEAD_FILE


def record_audit(state: AppState, entry: AuditEntry) -> int:
    return audit(state.store, entry, head_file=head_file(state))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def bearer_token(authorization: str | None, session_cookie: str | None) -> str:
    """The credential of a request: ``Authorization: Bearer <session token | API key | admin
    token>``, else (no Authorization header at all) the console's session cookie."""
    scheme, _, credentials = (authorization or "").partition(" ")
    token = credentials if scheme.lower() == "bearer" else ""
    if not token and not authorization:
        token = session_cookie or ""
    return token


def current_principal(
    request: Request,
    state: StateDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The authenticated caller (see `bearer_token`)."""
    token = bearer_token(authorization, request.cookies.get(SESSION_COOKIE))
    return state.principals.authenticate(state.store.cursor(), state.settings, token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@cache
def require(permission: Permission) -> DependsParam:
    """`Depends` that admits callers whose role has `permission` (and records it on the route).

    Use as ``principal: Annotated[Principal, require(Permission.X)]`` or in
    ``dependencies=[require(Permission.X)]``.
    """

    def dependency(request: Request, state: StateDep, principal: CurrentPrincipal) -> Principal:
        if not principal.may(permission):
            if permission in AUDITED_DENIALS:
                record_audit(
                    state,
                    AuditEntry(
                        actor=principal.actor,
                        actor_role=str(principal.role),
                        action="access.denied",
                        target=f"{request.method} {request.url.path}",
                        outcome="denied",
                        detail={"permission": str(permission)},
                    ),
                )
            raise PermissionDenied(
                f"role {principal.role} may not {permission}", permission=str(permission)
            )
        return principal

    setattr(dependency, PERMISSION_ATTR, permission)
    dependency.__name__ = f"require_{permission.value.replace('.', '_')}"
    declared: DependsParam = Depends(dependency)
    return declared


def _public() -> None:
    """No credentials needed."""


setattr(_public, PERMISSION_ATTR, PUBLIC_SCOPE)
PUBLIC = Depends(_public)


def check_member_scope(principal: Principal, store_code: str | None, target: str) -> None:
    """Consultants see unmasked data of their own store's members only."""
    if principal.role is Role.CONSULTANT and (
        store_code is None or store_code != principal.store_code
    ):
        raise PermissionDenied(
            f"{target} belongs to another store than yours", store_code=principal.store_code
        )


# Annotated aliases (full-stack-fastapi-template style).
SessionUser = Annotated[Principal, require(Permission.SESSION_SELF)]
UserAdmin = Annotated[Principal, require(Permission.USERS_MANAGE)]
ApiKeyAdmin = Annotated[Principal, require(Permission.API_KEYS_MANAGE)]
EncryptionKeyAdmin = Annotated[Principal, require(Permission.ENCRYPTION_KEYS_MANAGE)]
ConsentReader = Annotated[Principal, require(Permission.CONSENT_READ)]
ConsentWriter = Annotated[Principal, require(Permission.CONSENT_WRITE)]
ConsentChecker = Annotated[Principal, require(Permission.CONSENT_CHECK)]
AuditReader = Annotated[Principal, require(Permission.AUDIT_READ)]
MaskedReader = Annotated[Principal, require(Permission.PERSONAL_DATA_MASKED)]
UnmaskedReader = Annotated[Principal, require(Permission.PERSONAL_DATA_UNMASKED)]
DsrHandler = Annotated[Principal, require(Permission.DATA_SUBJECT_REQUESTS)]


def _walk(dependant: Any) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _walk(sub)


def app_routes(routes: list[BaseRoute]) -> list[RouteContext]:
    """Every route of an app (`app.routes`), with included routers expanded."""
    return list(iter_route_contexts(routes))


def declared_scopes(route: Any) -> list[str]:
    """The permissions / public markers a route declares (the matrix test wants exactly one).

    `route` is an `APIRoute` or a `RouteContext` (whose dependant includes the dependencies
    of the routers that include it).
    """
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return []
    found = []
    for call in _walk(dependant):
        scope = getattr(call, PERMISSION_ATTR, None)
        if scope is not None and str(scope) not in found:
            found.append(str(scope))
    return found

"""`mecdp user|apikey|keys|audit|consent ...`: the privacy verbs of the command line.

Each verb goes through a running `mecdp serve` (with the workspace admin token) when one owns
the store, and opens the store itself otherwise. Changes are written to the audit chain with
the actor ``cli`` (local) or ``admin_token`` (through the server).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mecdp.api.client import ServerClient, running_server
from mecdp.config import Settings, init_workspace
from mecdp.errors import InputError, MeCdpError
from mecdp.privacy import auth, consent
from mecdp.privacy.audit import HEAD_FILE, AuditEntry, append_audit, audited_transaction
from mecdp.privacy.audit import verify_audit as verify_chain
from mecdp.privacy.crypto import MemberKeys, load_keyring, rotate_keyring
from mecdp.store import Store, open_store

user_app = typer.Typer(help="Console/API users and their roles.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for server-to-server calls.", no_args_is_help=True)
keys_app = typer.Typer(help="Field-encryption keys (secrets/data.keys).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
consent_app = typer.Typer(help="The consent ledger.", no_args_is_help=True)

# (sub-app, name) pairs `mecdp.cli` mounts.
PRIVACY_COMMANDS: list[tuple[typer.Typer, str]] = [
    (user_app, "user"),
    (apikey_app, "apikey"),
    (keys_app, "keys"),
    (audit_app, "audit"),
    (consent_app, "consent"),
]

console = Console()
err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")
CLI_ACTOR = "cli"


def _settings() -> Settings:
    from mecdp.cli import _ctx  # the root callback has parsed --workspace by now

    return _ctx.settings


def _reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MeCdpError as exc:
            details = " ".join(f"{k}={v}" for k, v in exc.details.items())
            err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False)
            if details:
                err_console.print(f"  {details}", highlight=False, markup=False)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper


@contextmanager
def _local_store() -> Iterator[Store]:
    settings = _settings()
    init_workspace(settings)
    load_keyring(settings)
    store = open_store(settings.db_path)
    try:
        yield store
    finally:
        store.close()


def _server() -> ServerClient | None:
    return running_server(_settings())


def _call(server: ServerClient, method: str, path: str, **kwargs: Any) -> Any:
    return server._call(method, path, **kwargs)


def _entry(action: str, **kwargs: Any) -> AuditEntry:
    return AuditEntry(actor=CLI_ACTOR, actor_role="admin", action=action, **kwargs)


def _head() -> Path:
    return _settings().secrets_dir / HEAD_FILE


# --------------------------------------------------------------------------- users


@user_app.command("add")
@_reports_errors
def user_add(
    username: Annotated[str, typer.Argument(help="Login name: a-z, 0-9, '.', '_', '-'")],
    role: Annotated[str, typer.Option(help="admin, marketer, consultant, analyst, compliance")],
    store_code: Annotated[
        str | None, typer.Option("--store", help="Store a consultant serves")
    ] = None,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="MECDP_USER_PASSWORD",
            help="Prompted when not given (or from MECDP_USER_PASSWORD)",
        ),
    ] = "",
) -> None:
    """Add a console/API user with a role."""
    body = {"username": username, "password": password, "role": role, "store_code": store_code}
    server = _server()
    if server:
        user = _call(server, "POST", "/v1/users", json=body)
    else:
        with _local_store() as store, audited_transaction(store, head_file=_head()) as cur:
            user = auth.add_user(cur, username, password, role, store_code)
            append_audit(
                cur,
                _entry(
                    "user.created",
                    target=f"user:{username}",
                    detail={"role": user["role"], "store_code": store_code},
                ),
            )
    console.print(f"user {user['username']} added with role {user['role']}")


@user_app.command("list")
@_reports_errors
def user_list() -> None:
    """List users (never their passwords)."""
    server = _server()
    if server:
        rows: list[dict[str, Any]] = _call(server, "GET", "/v1/users")
    else:
        with _local_store() as store:
            rows = auth.list_users(store.cursor())
    table = Table("user", "role", "store", "active", "created (UTC)")
    for r in rows:
        table.add_row(
            r["username"], r["role"], r["store_code"] or "", str(r["active"]), r["created_at"]
        )
    console.print(table)


@user_app.command("set")
@_reports_errors
def user_set(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str | None, typer.Option(help="New role")] = None,
    store_code: Annotated[str | None, typer.Option("--store", help="New store")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--disabled", help="Enable or disable")
    ] = None,
) -> None:
    """Change a user's role, store or active flag (ends their sessions)."""
    body = {"role": role, "store_code": store_code, "active": active}
    server = _server()
    if server:
        user = _call(server, "PATCH", f"/v1/users/{username}", json=body)
    else:
        with _local_store() as store, audited_transaction(store, head_file=_head()) as cur:
            user = auth.update_user(cur, username, role=role, store_code=store_code, active=active)
            changed = sorted(k for k, v in body.items() if v is not None)
            append_audit(
                cur,
                _entry(
                    "user.updated",
                    target=f"user:{username}",
                    detail={"changed": changed, "role": user["role"]},
                ),
            )
    console.print(
        f"user {user['username']}: role {user['role']}, active {user['active']}"
        + (f", store {user['store_code']}" if user["store_code"] else "")
    )


# --------------------------------------------------------------------------- API keys


@apikey_app.command("create")
@_reports_errors
def apikey_create(
    name: Annotated[str, typer.Argument(help="What calls with this key")],
    role: Annotated[str, typer.Option(help="Role the key acts with")],
    store_code: Annotated[str | None, typer.Option("--store", help="Consultant store")] = None,
) -> None:
    """Mint an API key; the key is printed once, as the last line."""
    server = _server()
    if server:
        created = _call(
            server,
            "POST",
            "/v1/api-keys",
            json={"name": name, "role": role, "store_code": store_code},
        )
        key = str(created["api_key"])
    else:
        with _local_store() as store, audited_transaction(store, head_file=_head()) as cur:
            key, created = auth.create_api_key(cur, name, role, CLI_ACTOR, store_code)
            append_audit(
                cur,
                _entry(
                    "api_key.created",
                    target=f"api_key:{created['key_id']}",
                    detail={"role": created["role"]},
                ),
            )
    console.print(f"API key {created['key_id']} ({name}, role {created['role']}); keep it now:")
    typer.echo(key)


@apikey_app.command("list")
@_reports_errors
def apikey_list() -> None:
    """List API keys (ids and roles; the secrets are not kept)."""
    server = _server()
    if server:
        rows: list[dict[str, Any]] = _call(server, "GET", "/v1/api-keys")
    else:
        with _local_store() as store:
            rows = auth.list_api_keys(store.cursor())
    table = Table("key id", "name", "role", "store", "created (UTC)", "revoked")
    for r in rows:
        table.add_row(
            r["key_id"],
            r["name"],
            r["role"],
            r["store_code"] or "",
            r["created_at"],
            r["revoked_at"] or "",
        )
    console.print(table)


@apikey_app.command("revoke")
@_reports_errors
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="Key id")]) -> None:
    """Revoke an API key at once."""
    server = _server()
    if server:
        _call(server, "DELETE", f"/v1/api-keys/{key_id}")
    else:
        with _local_store() as store, audited_transaction(store, head_file=_head()) as cur:
            auth.revoke_api_key(cur, key_id)
            append_audit(cur, _entry("api_key.revoked", target=f"api_key:{key_id}"))
    console.print(f"API key {key_id} revoked")


# --------------------------------------------------------------------------- keys


@keys_app.command("rotate")
@_reports_errors
def keys_rotate() -> None:
    """Add a new active encryption key; old values stay readable; member keys are re-wrapped."""
    server = _server()
    if server:
        result = _call(server, "POST", "/v1/encryption-keys/rotate")
    else:
        with _local_store() as store:
            ring = rotate_keyring(load_keyring(_settings()))
            with audited_transaction(store, head_file=_head()) as cur:
                rewrapped = MemberKeys(cur, ring).rewrap()
                append_audit(
                    cur,
                    _entry(
                        "encryption_key.rotated",
                        target="secrets/data.keys",
                        detail={"active": ring.active, "member_keys_rewrapped": rewrapped},
                    ),
                )
            result = {"active": ring.active, "keys": sorted(ring.keys), "rewrapped": rewrapped}
    console.print(
        f"active key {result['active']} (ring: {', '.join(result['keys'])}); "
        f"{result['rewrapped']} member keys re-wrapped"
    )


# --------------------------------------------------------------------------- audit


@audit_app.command("verify")
@_reports_errors
def audit_verify() -> None:
    """Recompute the audit chain: exit 0 when intact, 1 naming the first tampered row."""
    server = _server()
    if server:
        result: dict[str, Any] = _call(server, "GET", "/v1/audit/verify")
    else:
        with _local_store() as store:
            result = verify_chain(store.cursor(), head_file=_head()).to_dict()
    if result["ok"]:
        console.print(f"audit chain intact: {result['rows']} rows")
        return
    err_console.print(
        f"[red]audit chain broken[/red] at row {result['first_bad_seq']}: {result['reason']}",
        highlight=False,
    )
    raise typer.Exit(1)


# --------------------------------------------------------------------------- consent


@consent_app.command("check")
@_reports_errors
def consent_check(
    purpose: Annotated[str, typer.Argument(help="Consent purpose, e.g. marketing_sms")],
    member_ref: Annotated[
        str | None, typer.Option(help="one_id:<id> or <type>:bi:<blind index>")
    ] = None,
    id_type: Annotated[str | None, typer.Option(help="Identifier type, e.g. phone")] = None,
    id_value: Annotated[
        str | None, typer.Option(help="Identifier value (hashed, never stored)")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Contact channel")] = None,
    sensitive: Annotated[bool, typer.Option(help="The use involves medical data")] = False,
    personalised: Annotated[bool, typer.Option(help="The use is personalised")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """May this member's data be used for PURPOSE? (exit 0 either way; see `allowed`)."""
    body: dict[str, Any] = {
        "member_ref": member_ref,
        "identifier": {"type": id_type, "value": id_value} if id_type and id_value else None,
        "purpose": purpose,
        "channel": channel,
        "sensitive": sensitive,
        "personalised": personalised,
    }
    server = _server()
    if server:
        result: dict[str, Any] = _call(server, "POST", "/v1/consents/check", json=body)
    else:
        settings = _settings()
        if not member_ref and not (id_type and id_value):
            raise InputError("give --member-ref or --id-type with --id-value", field="member_ref")
        with _local_store() as store:
            ref = member_ref or (
                consent.member_ref_for(settings.key(), id_type, id_value)
                if id_type and id_value
                else ""
            )
            decision = consent.may(
                store.cursor(),
                ref,
                purpose,
                channel,
                sensitive=sensitive,
                personalised=personalised,
            )
            result = {"member_ref": ref, **decision.to_dict()}
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    verdict = "[green]allowed[/green]" if result["allowed"] else "[red]denied[/red]"
    console.print(f"{verdict}: {result['reason']}")

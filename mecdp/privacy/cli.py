"""`mecdp user|apikey|keys|audit|consent ...`: the privacy verbs of the command line.

Each verb goes through a running `mecdp serve` (with the workspace admin token) when one owns
the store, and opens the store itself otherwise. Changes are written to the audit chain with
the actor ``cli`` (local) or ``admin_token`` (through the server).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mecdp.api.client import ServerClient, running_server
from mecdp.cli_support import current_settings, local_store, reports_errors
from mecdp.errors import InputError
from mecdp.privacy import auth, consent
from mecdp.privacy.audit import HEAD_FILE, AuditEntry, append_audit, audited_transaction
from mecdp.privacy.audit import verify_audit as verify_chain
from mecdp.privacy.crypto import MemberKeys, load_keyring, rotate_keyring

user_app = typer.Typer(help="Console/API users and their roles.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for server-to-server calls.", no_args_is_help=True)
keys_app = typer.Typer(help="Field-encryption keys (secrets/data.keys).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
consent_app = typer.Typer(help="The consent ledger.", no_args_is_help=True)
privacy_app = typer.Typer(
    help="Data-subject requests (access, correction, deletion) and the retention purge.",
    no_args_is_help=True,
)

# (sub-app, name) pairs `mecdp.cli` mounts.
PRIVACY_COMMANDS: list[tuple[typer.Typer, str]] = [
    (user_app, "user"),
    (apikey_app, "apikey"),
    (keys_app, "keys"),
    (audit_app, "audit"),
    (consent_app, "consent"),
    (privacy_app, "privacy"),
]

console = Console()
err_console = Console(stderr=True)
CLI_ACTOR = "cli"
_settings = current_settings
_reports_errors = reports_errors
_local_store = local_store


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


@consent_app.command("import")
@_reports_errors
def consent_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8/GBK), XLSX, JSONL or Parquet")],
    source: Annotated[str, typer.Option(help="Where the consents were collected")],
) -> None:
    """Record a file of consents (手机号/邮箱/one_id, 目的, 状态, 告知版本 …); bad rows go to
    quarantine with the field and the rule."""
    if not file.is_file():
        raise InputError(f"no such file: {file}", field="file", value=str(file))
    server = _server()
    if server:
        with file.open("rb") as fh:
            report: dict[str, Any] = _call(
                server,
                "POST",
                "/v1/consents/import",
                data={"source": source},
                files={"file": (file.name, fh)},
            )
    else:
        from mecdp.privacy.consent_import import import_consents

        with _local_store() as store:
            report = import_consents(store, _settings(), file, source=source, actor="cli").to_dict()
    console.print(
        f"{report['file_name']}: read {report['rows_read']}, recorded {report['recorded']}, "
        f"quarantined {report['quarantined']} {report['rejects_by_rule'] or ''}",
        highlight=False,
        markup=False,
    )


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


# --------------------------------------------------------------------------- data-subject requests


def _identifiers(ids: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in ids:
        id_type, sep, value = item.partition("=")
        if not sep or not value:
            raise InputError(f"--id takes TYPE=VALUE, not {item!r}", field="id")
        out.append((id_type.strip(), value.strip()))
    return out


@privacy_app.command("dsr-open")
@_reports_errors
def dsr_open(
    kind: Annotated[str, typer.Argument(help="access, correction or deletion")],
    ids: Annotated[
        list[str], typer.Option("--id", help="Identifier TYPE=VALUE, e.g. phone=13812345678")
    ],
) -> None:
    """Register a data-subject request (due in 15 working days)."""
    from mecdp.privacy import dsr

    identifiers = _identifiers(ids)
    server = _server()
    if server:
        body = {"kind": kind, "identifiers": [{"type": t, "value": v} for t, v in identifiers]}
        result: dict[str, Any] = _call(server, "POST", "/v1/dsr", json=body)
    else:
        with _local_store() as store:
            result = dsr.open_request(store, _settings(), kind, identifiers, CLI_ACTOR, "admin")
    console.print(f"{result['request_id']} {result['kind']} due {result['due_on']}")


@privacy_app.command("dsr-list")
@_reports_errors
def dsr_list(status: Annotated[str | None, typer.Option(help="Only this status")] = None) -> None:
    """The request queue, earliest due first."""
    from mecdp.privacy import dsr

    server = _server()
    if server:
        rows: list[dict[str, Any]] = _call(
            server, "GET", "/v1/dsr", params={"status": status} if status else None
        )
    else:
        with _local_store() as store:
            rows = dsr.list_requests(store.cursor(), status)
    table = Table("request", "kind", "status", "received", "due")
    for r in rows:
        table.add_row(r["request_id"], r["kind"], r["status"], r["received_at"], r["due_on"])
    console.print(table)


@privacy_app.command("dsr-export")
@_reports_errors
def dsr_export(
    request_id: str,
    out: Annotated[Path, typer.Option(help="Write here: .zip (JSON + CSV) or .json")],
) -> None:
    """The member's complete data, decrypted, for the data subject (audited)."""
    from mecdp.privacy import dsr

    server = _server()
    if server:
        data: dict[str, Any] = _call(server, "GET", f"/v1/dsr/{request_id}/export")
    else:
        with _local_store() as store:
            data = dsr.run_export(store, _settings(), request_id, CLI_ACTOR, "admin")
    if out.suffix == ".zip":
        out.write_bytes(dsr.export_zip(data))
    else:
        out.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    out.chmod(0o600)
    console.print(f"exported {sum(len(r) for r in data['tables'].values())} rows to {out}")


@privacy_app.command("dsr-correct")
@_reports_errors
def dsr_correct(request_id: str, field: str, value: str) -> None:
    """Correct a profile field of the request's member (history kept, encrypted)."""
    from mecdp.privacy import dsr

    server = _server()
    if server:
        body = {"field": field, "value": value}
        result: dict[str, Any] = _call(server, "POST", f"/v1/dsr/{request_id}/correct", json=body)
    else:
        with _local_store() as store:
            result = dsr.run_correction(
                store, _settings(), request_id, field, value, CLI_ACTOR, "admin"
            )
    console.print(f"corrected {result['field']} on {result['records']} records")


@privacy_app.command("dsr-delete")
@_reports_errors
def dsr_delete(request_id: str) -> None:
    """Erase the request's member everywhere (medical records restricted), compact the store."""
    from mecdp.privacy import dsr

    server = _server()
    if server:
        result: dict[str, Any] = _call(server, "POST", f"/v1/dsr/{request_id}/delete")
    else:
        with _local_store() as store:
            result = dsr.run_deletion(
                store, _settings(), request_id, CLI_ACTOR, "admin", store.compact
            )
    console.print(f"{result['request_id']} {result['status']}: {json.dumps(result['result'])}")


@privacy_app.command("purge")
@_reports_errors
def purge() -> None:
    """Delete what is past its retention (retention.yaml), audited."""
    from mecdp.privacy import dsr

    server = _server()
    if server:
        counts: dict[str, int] = _call(server, "POST", "/v1/privacy/purge")
    else:
        with _local_store() as store:
            counts = dsr.run_purge(store, _settings(), CLI_ACTOR, "admin")
    console.print(" ".join(f"{k}={v}" for k, v in counts.items()))

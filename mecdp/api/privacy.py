"""Privacy routes: login/sessions, users, API keys, encryption keys, consents, audit, and the
masked / unmasked contact views. Views validate, call the privacy services and shape answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mecdp.api.deps import (
    PUBLIC,
    ApiKeyAdmin,
    AuditReader,
    ConsentChecker,
    ConsentReader,
    ConsentWriter,
    DsrHandler,
    EncryptionKeyAdmin,
    MaskedReader,
    SessionUser,
    StateDep,
    UnmaskedReader,
    UserAdmin,
    check_member_scope,
    client_ip,
    head_file,
    record_audit,
)
from mecdp.api.state import AppState
from mecdp.api.uploads import saved_upload
from mecdp.errors import AuthenticationError, InputError, PermissionDenied
from mecdp.privacy import auth, consent, dsr
from mecdp.privacy.audit import AuditEntry, append_audit, audited_transaction, list_audit
from mecdp.privacy.audit import verify_audit as verify_chain
from mecdp.privacy.crypto import MemberKeys, load_keyring, rotate_keyring
from mecdp.privacy.masking import READ_PURPOSES, mask_record, reveals_personal_data
from mecdp.privacy.members import member_ref_of_record, read_contact
from mecdp.privacy.vault import read_quarantine, vault_for


class LoginBody(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserCreate(BaseModel):
    username: str
    password: str = Field(max_length=1024)
    role: str
    store_code: str | None = None


class UserUpdate(BaseModel):
    role: str | None = None
    store_code: str | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)


class ApiKeyCreate(BaseModel):
    name: str
    role: str
    store_code: str | None = None


class Identifier(BaseModel):
    type: str
    value: str = Field(max_length=256)


class MemberBody(BaseModel):
    member_ref: str | None = None
    identifier: Identifier | None = None


class ConsentCreate(MemberBody):
    purpose: str
    status: Literal["granted", "withdrawn"]
    channel: str | None = None
    notice_version: str
    notice_text: str | None = None
    notice_sha256: str | None = None
    source: str
    evidence: str | None = None
    occurred_at: datetime | None = None


class DsrCreate(BaseModel):
    kind: Literal["access", "correction", "deletion"]
    identifiers: list[Identifier] = Field(min_length=1, max_length=10)


class DsrStatus(BaseModel):
    status: Literal["received", "in_progress", "completed", "rejected"]
    note: str | None = Field(default=None, max_length=500)


class DsrCorrection(BaseModel):
    field: str
    value: str = Field(max_length=256)


class ConsentCheck(MemberBody):
    purpose: str
    channel: str | None = None
    sensitive: bool = False
    personalised: bool = False


def _member_ref(state: AppState, body: MemberBody) -> str:
    if body.member_ref:
        return body.member_ref
    if body.identifier is None:
        raise InputError("member_ref or identifier {type, value} is required", field="member_ref")
    return consent.member_ref_for(state.settings.key(), body.identifier.type, body.identifier.value)


def _entry(principal: auth.Principal, action: str, **kwargs: Any) -> AuditEntry:
    return AuditEntry(
        actor=principal.actor, actor_role=str(principal.role), action=action, **kwargs
    )


def build_privacy_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["privacy"])
    settings = state.settings

    # ------------------------------------------------------------------ sessions

    @router.post("/auth/login", dependencies=[PUBLIC])
    def login(body: LoginBody, request: Request) -> dict[str, Any]:
        ip = client_ip(request)
        try:
            token, expires, principal = auth.login(
                state.store.cursor(), settings, body.username, body.password, ip
            )
        except auth.TooManyAttempts:
            record_audit(
                state,
                AuditEntry(
                    actor=body.username,
                    action="auth.login_throttled",
                    outcome="denied",
                    detail={"client_ip": ip},
                ),
            )
            raise
        except AuthenticationError:
            record_audit(
                state,
                AuditEntry(
                    actor=body.username,
                    action="auth.login_failed",
                    outcome="denied",
                    detail={"client_ip": ip},
                ),
            )
            raise
        return {
            "token": token,
            "token_type": "bearer",
            "expires_at": expires.isoformat() + "Z",
            "user": principal.public(),
        }

    @router.post("/auth/logout")
    def logout(principal: SessionUser) -> dict[str, Any]:
        ended = auth.logout(state.store.cursor(), principal)
        return {"logged_out": ended}

    @router.get("/auth/me")
    def me(principal: SessionUser) -> dict[str, Any]:
        return principal.public()

    # ------------------------------------------------------------------ users

    @router.get("/users")
    def list_users(_: UserAdmin) -> list[dict[str, Any]]:
        return auth.list_users(state.store.cursor())

    @router.post("/users", status_code=201)
    def add_user(body: UserCreate, principal: UserAdmin) -> dict[str, Any]:
        with audited_transaction(state.store, head_file=head_file(state)) as cur:
            user = auth.add_user(cur, body.username, body.password, body.role, body.store_code)
            append_audit(
                cur,
                _entry(
                    principal,
                    "user.created",
                    target=f"user:{body.username}",
                    detail={"role": user["role"], "store_code": user["store_code"]},
                ),
            )
        return user

    @router.patch("/users/{username}")
    def update_user(username: str, body: UserUpdate, principal: UserAdmin) -> dict[str, Any]:
        with audited_transaction(state.store, head_file=head_file(state)) as cur:
            user = auth.update_user(
                cur,
                username,
                role=body.role,
                store_code=body.store_code,
                active=body.active,
                password=body.password,
            )
            changed = sorted(k for k, v in body.model_dump().items() if v is not None)
            append_audit(
                cur,
                _entry(
                    principal,
                    "user.updated",
                    target=f"user:{username}",
                    detail={"changed": changed, "role": user["role"]},
                ),
            )
        return user

    # ------------------------------------------------------------------ API keys

    @router.get("/api-keys")
    def list_api_keys(_: ApiKeyAdmin) -> list[dict[str, Any]]:
        return auth.list_api_keys(state.store.cursor())

    @router.post("/api-keys", status_code=201)
    def create_api_key(body: ApiKeyCreate, principal: ApiKeyAdmin) -> dict[str, Any]:
        with audited_transaction(state.store, head_file=head_file(state)) as cur:
            key, public = auth.create_api_key(
                cur, body.name, body.role, principal.actor, body.store_code
            )
            append_audit(
                cur,
                _entry(
                    principal,
                    "api_key.created",
                    target=f"api_key:{public['key_id']}",
                    detail={"role": public["role"]},
                ),
            )
        return {**public, "api_key": key}

    @router.delete("/api-keys/{key_id}")
    def revoke_api_key(key_id: str, principal: ApiKeyAdmin) -> dict[str, Any]:
        with audited_transaction(state.store, head_file=head_file(state)) as cur:
            public = auth.revoke_api_key(cur, key_id)
            append_audit(cur, _entry(principal, "api_key.revoked", target=f"api_key:{key_id}"))
        return public

    @router.post("/encryption-keys/rotate")
    def rotate_encryption_key(principal: EncryptionKeyAdmin) -> dict[str, Any]:
        ring = rotate_keyring(load_keyring(settings))
        with audited_transaction(state.store, head_file=head_file(state)) as cur:
            rewrapped = MemberKeys(cur, ring).rewrap()
            append_audit(
                cur,
                _entry(
                    principal,
                    "encryption_key.rotated",
                    target="secrets/data.keys",
                    detail={"active": ring.active, "member_keys_rewrapped": rewrapped},
                ),
            )
        return {"active": ring.active, "keys": sorted(ring.keys), "rewrapped": rewrapped}

    # ------------------------------------------------------------------ consents

    @router.post("/consents/import")
    def import_consent_file(
        file: Annotated[UploadFile, File()],
        source: Annotated[str, Form()],
        principal: ConsentWriter,
    ) -> dict[str, object]:
        """Record a file of consents (CSV/XLSX/JSONL/Parquet); bad rows are quarantined."""
        from mecdp.privacy.consent_import import import_consents

        with saved_upload(file, "consents.csv") as path:
            report = import_consents(
                state.store, state.settings, path, source=source, actor=principal.actor
            )
        return report.to_dict()

    @router.post("/consents", status_code=201)
    def record_consent(body: ConsentCreate, principal: ConsentWriter) -> dict[str, Any]:
        ref = _member_ref(state, body)
        fields = body.model_dump(exclude={"member_ref", "identifier"})
        with audited_transaction(state.store, head_file=head_file(state)) as cur:
            record = consent.record_consent(
                cur, recorded_by=principal.actor, member_ref=ref, **fields
            )
            append_audit(
                cur,
                _entry(
                    principal,
                    "consent.recorded",
                    target=f"consent:{record.consent_id}",
                    member_refs=[ref],
                    purpose=record.purpose,
                    detail={"status": record.status, "channel": record.channel},
                ),
            )
        return record.to_dict()

    @router.get("/consents")
    def list_consents(
        _: ConsentReader, member_ref: Annotated[str, Query(max_length=200)]
    ) -> dict[str, Any]:
        cur = state.store.cursor()
        return {
            "member_ref": member_ref,
            "current": [c.to_dict() for c in consent.current_consents(cur, member_ref)],
            "events": [c.to_dict() for c in consent.list_consents(cur, member_ref)],
        }

    @router.post("/consents/check")
    def check_consent(body: ConsentCheck, _: ConsentChecker) -> dict[str, Any]:
        ref = _member_ref(state, body)
        decision = consent.may(
            state.store.cursor(),
            ref,
            body.purpose,
            body.channel,
            sensitive=body.sensitive,
            personalised=body.personalised,
        )
        return {"member_ref": ref, **decision.to_dict()}

    # ------------------------------------------------------------------ audit

    @router.get("/audit")
    def audit_log(
        _: AuditReader,
        member_ref: str | None = None,
        action: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return list_audit(state.store.cursor(), member_ref=member_ref, action=action, limit=limit)

    @router.get("/audit/verify")
    def verify_audit(_: AuditReader) -> dict[str, Any]:
        return verify_chain(state.store.cursor(), head_file=head_file(state)).to_dict()

    # ------------------------------------------------------------------ personal data views

    @router.get("/contacts/{record_id}")
    def contact_masked(record_id: str, principal: MaskedReader) -> dict[str, Any]:
        record = read_contact(state.store.cursor(), settings, record_id)
        return mask_record(record, principal.role, None)

    @router.get("/contacts/{record_id}/unmasked")
    def contact_unmasked(
        record_id: str,
        principal: UnmaskedReader,
        purpose: Annotated[str, Query(description="service or data_subject_request")],
    ) -> dict[str, Any]:
        if purpose not in READ_PURPOSES:
            raise InputError(
                f"purpose must be one of: {', '.join(READ_PURPOSES)}",
                field="purpose",
                value=purpose,
                rule="read.purpose",
            )
        record = read_contact(state.store.cursor(), settings, record_id)
        ref = member_ref_of_record(record_id)
        try:
            check_member_scope(principal, record["store_code"], f"record {record_id}")
            if not reveals_personal_data(record, principal.role, purpose):
                raise PermissionDenied(
                    f"role {principal.role} may not see unmasked data for purpose {purpose}",
                    purpose=purpose,
                )
        except PermissionDenied:
            record_audit(
                state,
                _entry(
                    principal,
                    "personal_data.read_unmasked",
                    target=f"contacts:{record_id}",
                    member_refs=[ref],
                    purpose=purpose,
                    outcome="denied",
                ),
            )
            raise
        record_audit(
            state,
            _entry(
                principal,
                "personal_data.read_unmasked",
                target=f"contacts:{record_id}",
                member_refs=[ref],
                purpose=purpose,
            ),
        )
        return mask_record(record, principal.role, purpose)

    # ------------------------------------------------------------------ data-subject requests

    def actor(principal: auth.Principal) -> tuple[str, str]:
        return principal.actor, str(principal.role)

    @router.post("/dsr", status_code=201)
    def dsr_create(body: DsrCreate, principal: DsrHandler) -> dict[str, Any]:
        ids = [(i.type, i.value) for i in body.identifiers]
        return dsr.open_request(state.store, settings, body.kind, ids, *actor(principal))

    @router.get("/dsr")
    def dsr_list(_: DsrHandler, status: str | None = None) -> list[dict[str, Any]]:
        return dsr.list_requests(state.store.cursor(), status)

    @router.get("/dsr/{request_id}")
    def dsr_get(request_id: str, _: DsrHandler) -> dict[str, Any]:
        return dsr.get_request(state.store.cursor(), request_id)

    @router.post("/dsr/{request_id}/status")
    def dsr_status(request_id: str, body: DsrStatus, principal: DsrHandler) -> dict[str, Any]:
        return dsr.change_status(
            state.store, settings, request_id, body.status, *actor(principal), note=body.note
        )

    @router.get("/dsr/{request_id}/export", response_model=None)
    def dsr_export(
        request_id: str,
        principal: DsrHandler,
        format: Annotated[Literal["json", "zip"], Query()] = "json",
    ) -> dict[str, Any] | Response:
        data = dsr.run_export(state.store, settings, request_id, *actor(principal))
        if format == "zip":
            return Response(
                dsr.export_zip(data),
                media_type="application/zip",
                headers={"Content-Disposition": f'attachment; filename="{request_id}.zip"'},
            )
        return data

    @router.post("/dsr/{request_id}/correct")
    def dsr_correct(request_id: str, body: DsrCorrection, principal: DsrHandler) -> dict[str, Any]:
        return dsr.run_correction(
            state.store, settings, request_id, body.field, body.value, *actor(principal)
        )

    @router.post("/dsr/{request_id}/delete")
    def dsr_delete(request_id: str, principal: DsrHandler) -> dict[str, Any]:
        return dsr.run_deletion(
            state.store, settings, request_id, *actor(principal), lambda: compact_store(state)
        )

    @router.get("/privacy/quarantine")
    def quarantine_plain(
        principal: DsrHandler,
        source_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        rows = read_quarantine(
            state.store.cursor(), vault_for(settings), limit=limit, source_id=source_id
        )
        record_audit(
            state,
            _entry(
                principal,
                "personal_data.read_unmasked",
                target="quarantine",
                purpose="data_subject_request",
                detail={"rows": len(rows), "source_id": source_id},
            ),
        )
        return rows

    @router.get("/privacy/restricted")
    def restricted(principal: DsrHandler, request_id: str | None = None) -> list[dict[str, Any]]:
        rows = dsr.restricted_records(state.store.cursor(), settings, request_id)
        record_audit(
            state,
            _entry(
                principal,
                "restricted_records.read",
                target="restricted_records",
                purpose="data_subject_request",
                detail={"rows": len(rows), "request_id": request_id},
            ),
        )
        return rows

    @router.post("/privacy/purge")
    def purge(principal: DsrHandler) -> dict[str, int]:
        return dsr.run_purge(state.store, settings, *actor(principal))

    return router


def compact_store(state: AppState) -> None:
    """Rewrite the store file (after a deletion): stop the workers and the import session
    (they hold cursors), compact, start them again."""
    from mecdp.collect import importer

    for worker in reversed(state.workers):
        worker.stop()
    try:
        with importer._SESSIONS_LOCK:
            session = importer._SESSIONS.pop(state.store, None)
        if session is not None:
            with session.lock:
                session.cursor.close()
        state.store.compact()
    finally:
        for worker in state.workers:
            worker.start()


def install_privacy(app: FastAPI, state: AppState) -> None:
    """Include the privacy routes; make sure the key ring exists; answer 429 with Retry-After."""
    load_keyring(state.settings)
    app.include_router(build_privacy_router(state))

    @app.exception_handler(auth.TooManyAttempts)
    async def _throttled(_: Request, exc: auth.TooManyAttempts) -> JSONResponse:
        return JSONResponse(
            exc.to_dict(),
            status_code=exc.status_code,
            headers={"Retry-After": str(exc.retry_after)},
        )


__all__ = ["StateDep", "build_privacy_router", "install_privacy"]

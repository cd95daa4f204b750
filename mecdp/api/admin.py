"""Admin routes the CLI uses while a server owns the store: sources, file import, quality.

Guarded by the workspace admin token (`secrets/admin.token`) until roles arrive.
"""

from __future__ import annotations

import hmac
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, UploadFile
from pydantic import BaseModel

from mecdp.api.state import AppState
from mecdp.collect import sources as source_service
from mecdp.collect.quality import quality_report
from mecdp.errors import AuthenticationError


class SourceCreate(BaseModel):
    name: str
    channel: str
    kind: str = "events"
    mapping: str | None = None


class SourcePublic(BaseModel):
    source_id: str
    name: str
    channel: str
    kind: str
    mapping: str | None
    created_at: str


class SourceCreated(SourcePublic):
    write_key: str


def build_admin_router(state: AppState) -> APIRouter:
    def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = state.settings.admin_token()
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(token, expected):
            raise AuthenticationError("a valid admin token is required (Authorization: Bearer)")

    router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    @router.get("/sources", response_model=list[SourcePublic])
    def list_sources() -> list[dict[str, object]]:
        return [s.public() for s in source_service.list_sources(state.store.cursor())]

    @router.post("/sources", response_model=SourceCreated, status_code=201)
    def add_source(body: SourceCreate) -> dict[str, object]:
        src = source_service.add_source(
            state.store.cursor(),
            body.name,
            channel=body.channel,
            kind=body.kind,
            mapping=body.mapping,
        )
        return {**src.public(), "write_key": src.write_key}

    @router.post("/ingest")
    def ingest_file(
        file: Annotated[UploadFile, File()],
        source: Annotated[str, Form()],
        mapping: Annotated[str | None, Form()] = None,
    ) -> dict[str, object]:
        from mecdp.collect.importer import import_file

        name = Path(file.filename or "upload").name
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            with path.open("wb") as out:
                shutil.copyfileobj(file.file, out)
            report = import_file(
                state.store, state.settings, path, source_id=source, mapping=mapping
            )
        result: dict[str, object] = report.to_dict()
        return result

    @router.get("/quality")
    def quality() -> list[dict[str, object]]:
        return [q.to_dict() for q in quality_report(state.store.cursor())]

    return router

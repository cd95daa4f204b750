"""Admin routes the CLI uses while a server owns the store: sources, file import, quality.

Each route declares its permission (`mecdp.api.deps.require`); the CLI calls them with the
workspace admin token (`secrets/admin.token`), which authenticates as an admin API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel

from mecdp.api.deps import require
from mecdp.api.state import AppState
from mecdp.api.uploads import saved_upload
from mecdp.collect import sources as source_service
from mecdp.collect.quality import quality_report
from mecdp.privacy.roles import Permission


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
    router = APIRouter(prefix="/v1/admin", tags=["admin"])

    @router.get(
        "/sources",
        response_model=list[SourcePublic],
        dependencies=[require(Permission.SOURCES_READ)],
    )
    def list_sources() -> list[dict[str, object]]:
        return [s.public() for s in source_service.list_sources(state.store.cursor())]

    @router.post(
        "/sources",
        response_model=SourceCreated,
        status_code=201,
        dependencies=[require(Permission.SOURCES_MANAGE)],
    )
    def add_source(body: SourceCreate) -> dict[str, object]:
        src = source_service.add_source(
            state.store.cursor(),
            body.name,
            channel=body.channel,
            kind=body.kind,
            mapping=body.mapping,
        )
        return {**src.public(), "write_key": src.write_key}

    @router.post("/ingest", dependencies=[require(Permission.DATA_IMPORT)])
    def ingest_file(
        file: Annotated[UploadFile, File()],
        source: Annotated[str, Form()],
        mapping: Annotated[str | None, Form()] = None,
    ) -> dict[str, object]:
        from mecdp.collect.importer import import_file

        with saved_upload(file, "upload") as path:
            report = import_file(
                state.store, state.settings, path, source_id=source, mapping=mapping
            )
        result: dict[str, object] = report.to_dict()
        return result

    @router.get("/quality", dependencies=[require(Permission.QUALITY_READ)])
    def quality() -> list[dict[str, object]]:
        return [q.to_dict() for q in quality_report(state.store.cursor())]

    return router

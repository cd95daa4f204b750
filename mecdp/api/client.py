"""How the CLI reaches a running server that owns the store (DuckDB allows one writer process)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from mecdp.config import Settings
from mecdp.errors import (
    AuthenticationError,
    Conflict,
    InputError,
    MeCdpError,
    NotFound,
    PermissionDenied,
)

_BY_STATUS: dict[int, type[MeCdpError]] = {
    400: InputError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
}


class ServerClient:
    """Admin calls to the server named in the workspace's server.json."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError):
                error = {"message": response.text}
            message = str(error.pop("message", "server error"))
            error.pop("code", None)
            raise _BY_STATUS.get(response.status_code, MeCdpError)(message, **error)
        return response.json()

    def add_source(self, name: str, channel: str, kind: str, mapping: str | None) -> Any:
        body = {"name": name, "channel": channel, "kind": kind, "mapping": mapping}
        return self._call("POST", "/v1/admin/sources", json=body)

    def list_sources(self) -> Any:
        return self._call("GET", "/v1/admin/sources")

    def ingest(self, path: Path, source: str, mapping: str | None) -> Any:
        data = {"source": source} | ({"mapping": mapping} if mapping else {})
        with path.open("rb") as fh:
            return self._call(
                "POST", "/v1/admin/ingest", data=data, files={"file": (path.name, fh)}
            )

    def quality(self) -> Any:
        return self._call("GET", "/v1/admin/quality")

    def close(self) -> None:
        self._http.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_server(settings: Settings) -> ServerClient | None:
    """The server owning this workspace's store, if one is running and answering."""
    try:
        info = json.loads(settings.server_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(int(info.get("pid", 0))):
        return None
    try:
        httpx.get(f"{info['url']}/healthz", timeout=2).raise_for_status()
    except httpx.HTTPError:
        return None
    return ServerClient(str(info["url"]), settings.admin_token())

"""One error hierarchy: the API turns it into one JSON shape, the CLI into exit codes."""

from __future__ import annotations

from typing import Any


class MeCdpError(Exception):
    """Base of every error MeCDP raises on purpose."""

    status_code = 500
    code = "internal_error"
    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The body of the one JSON error shape: {"error": {"code", "message", ...details}}."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InputError(MeCdpError, ValueError):
    """Bad input from a caller: names the field (or limit) and the reason."""

    status_code = 400
    code = "invalid_input"
    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        rule: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, field=field, value=value, rule=rule, **details)
        self.field = field
        self.rule = rule


class LimitExceeded(InputError):
    """A payload over a documented size limit."""

    code = "limit_exceeded"


class UnsupportedMediaType(InputError):
    status_code = 415
    code = "unsupported_media_type"


class AuthenticationError(MeCdpError):
    status_code = 401
    code = "unauthorized"
    exit_code = 2


class PermissionDenied(MeCdpError):
    status_code = 403
    code = "forbidden"
    exit_code = 2


class NotFound(MeCdpError):
    status_code = 404
    code = "not_found"
    exit_code = 2


class Conflict(MeCdpError):
    status_code = 409
    code = "conflict"
    exit_code = 2


class StoreBusy(MeCdpError):
    """The store is owned by another process (a running `mecdp serve`)."""

    status_code = 503
    code = "store_busy"
    exit_code = 3

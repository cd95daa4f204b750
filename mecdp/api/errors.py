"""The one JSON error shape: {"error": {"code", "message", ...field/value/rule/limit}}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mecdp.errors import MeCdpError


def error_response(exc: MeCdpError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MeCdpError)
    async def _mecdp_error(_: Request, exc: MeCdpError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        body = {
            "error": {
                "code": "invalid_input",
                "message": f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}",
                "field": ".".join(loc) or None,
                "rule": first.get("type"),
            }
        }
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

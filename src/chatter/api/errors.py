"""The one mapping from errors to HTTP: `{"error": {code, message, details, correlation_id}}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from chatter.errors import ChatterError

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

VALIDATION_FAILED = "Request validation failed."
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def correlation_id_of(request: Request) -> str | None:
    value = getattr(request.state, "correlation_id", None)
    return value if isinstance(value, str) else None


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": jsonable_encoder(details),
            "correlation_id": correlation_id_of(request),
        }
    }
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _chatter_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatterError)
    headers = exc.response_headers()
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(
        request, exc.status_code, exc.code, exc.message, exc.details, headers or None
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
        for err in exc.errors()
    ]
    return error_response(request, 422, "validation_error", VALIDATION_FAILED, details)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path. Starlette's own 405 names only the
    methods of the first route that matched the path, and a path is often served by several
    routes (GET, PATCH and DELETE of one conversation). Asking the routes themselves, one
    method at a time, works however routers are nested."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def _unparsable_body(exc: StarletteHTTPException) -> bool:
    """FastAPI answers a body json.loads can't decode with a 422 `json_invalid`, except when
    decoding fails otherwise (not UTF-8, nested past the recursion limit): then a bare 400.
    Both are the same mistake, so both get the 422."""
    return exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if _unparsable_body(exc):
        details = [{"loc": ["body"], "msg": "The body is not valid JSON.", "type": "json_invalid"}]
        return error_response(request, 422, "validation_error", VALIDATION_FAILED, details)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ").capitalize()
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (methods := allowed_methods(request)):
        headers["Allow"] = ", ".join(methods)
    return error_response(request, exc.status_code, code, message, headers=headers or None)


async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
    # Every connection stayed busy for the pool's whole timeout: an overload, not a bug.
    return error_response(
        request,
        503,
        "database_busy",
        "The database is busy; retry shortly.",
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatterError, _chatter_error)
    app.add_exception_handler(PoolTimeoutError, _database_busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

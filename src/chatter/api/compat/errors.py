"""Errors of the compatible endpoints, in each wire format's own shape and status.

The routes use an APIRoute subclass that turns whatever a request raises before its answer
starts (bad key, invalid body, unknown model, another user's conversation, a failed turn,
a full database pool) into `{"error": {"message", "type", "code"}}` (OpenAI) or
`{"type": "error", "error": {"type", "message"}}` (Anthropic). Chatter's error codes map
generically: the status comes from the ChatterError, the type from the status.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatter.api.errors import HTTP_CODES
from chatter.errors import ChatterError

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "rate_limit_error",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


@dataclass(frozen=True)
class WireError:
    status: int
    code: str
    message: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def wire_error(exc: Exception) -> WireError | None:
    """The error a client gets for `exc`, or None for a bug (left to the 500 handler)."""
    if isinstance(exc, RequestValidationError):
        problems = [_problem(error) for error in exc.errors()]
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        param = ".".join(str(part) for part in first[1:]) or None
        return WireError(400, "invalid_request", "; ".join(problems), param)
    if isinstance(exc, ChatterError):
        # 422 is Chatter's "well-formed but refused": both formats call that a 400.
        status = 400 if exc.status_code == 422 else exc.status_code
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return WireError(status, exc.code, exc.message, headers=headers)
    if isinstance(exc, StarletteHTTPException):
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return WireError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, PoolTimeoutError):
        message = "The database is busy; retry shortly."
        return WireError(503, "database_busy", message, headers={"Retry-After": "1"})
    return None


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())[1:])
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


def openai_error_body(error: WireError) -> dict[str, Any]:
    kind = OPENAI_TYPES.get(error.status, "server_error" if error.status >= 500 else "error")
    return {
        "error": {
            "message": error.message,
            "type": kind,
            "code": error.code,
            "param": error.param,
        }
    }


def anthropic_error_body(error: WireError) -> dict[str, Any]:
    kind = ANTHROPIC_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def openai_error_response(error: WireError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        openai_error_body(error), error.status, headers={**error.headers, **(headers or {})}
    )


def anthropic_error_response(
    error: WireError, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        anthropic_error_body(error), error.status, headers={**error.headers, **(headers or {})}
    )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _answering_errors(handler: Handler, render: Callable[[WireError], JSONResponse]) -> Handler:
    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            error = wire_error(exc)
            if error is None:
                raise
            return render(error)

    return route


class OpenAIRoute(APIRoute):
    """Answers errors in OpenAI's shape."""

    def get_route_handler(self) -> Handler:
        return _answering_errors(super().get_route_handler(), openai_error_response)


class AnthropicRoute(APIRoute):
    """Answers errors in Anthropic's shape."""

    def get_route_handler(self) -> Handler:
        return _answering_errors(super().get_route_handler(), anthropic_error_response)

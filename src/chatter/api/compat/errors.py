"""Errors of the compatible endpoints, in each wire format's own shape and status.

The routes use an APIRoute subclass: whatever a request raises before its answer starts
(bad key, invalid body, unknown model, another user's conversation, an admission refusal, a
full database pool) is answered as the app's own handlers would (status, code, message,
headers such as Retry-After), but in `{"error": {"message", "type", "code"}}` (OpenAI) or
`{"type": "error", "error": {"type", "message"}}` (Anthropic). The mapping is generic: the
status comes from the error, the type from the status, so new error codes need nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

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


def wire_error(exc: ChatterError) -> WireError:
    """A turn's error (it failed or was refused after admission) in wire terms."""
    # 422 is Chatter's "well-formed but refused": both formats call that a 400.
    status = 400 if exc.status_code == 422 else exc.status_code
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return WireError(status, exc.code, exc.message, headers=headers)


async def app_error(request: Request, exc: Exception) -> WireError | None:
    """What the app's own error handlers (api/errors.py) answer for `exc` - its status,
    code, message and headers (WWW-Authenticate, Retry-After, ...) - for a compatible route
    to say in its own format; None when no handler takes it (a bug: a 500)."""
    handler = _handler(request.app.exception_handlers, exc)
    if handler is None:
        return None
    response = await handler(request, exc)
    error = json.loads(bytes(response.body))["error"]
    headers = {
        name: value
        for name, value in response.headers.items()
        if name.lower() not in ("content-length", "content-type")
    }
    status = 400 if response.status_code == 422 else response.status_code
    details = error.get("details")
    if error["code"] == "validation_error" and isinstance(details, list) and details:
        first = details[0]
        loc = [] if first.get("type") == "json_invalid" else first.get("loc", [])[1:]
        message = "; ".join(_problem(problem) for problem in details)
        param = ".".join(str(part) for part in loc) or None
        return WireError(status, error["code"], message, param, headers)
    return WireError(status, error["code"], error["message"], headers=headers)


def _handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    for kind in type(exc).__mro__:
        if kind in handlers:
            return handlers[kind]
    return None


def _problem(problem: Mapping[str, Any]) -> str:
    if problem.get("type") == "json_invalid":
        return "The body is not valid JSON."
    where = ".".join(str(part) for part in problem.get("loc", [])[1:])
    return f"{where}: {problem.get('msg')}" if where else str(problem.get("msg"))


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
            error = await app_error(request, exc)
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

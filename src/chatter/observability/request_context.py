"""ASGI middleware: correlation id in, correlation id out, and a last-resort 500.

It is pure ASGI (not BaseHTTPMiddleware) so streaming responses pass straight through and
the structlog context stays bound for the whole request, streaming included.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatter.domain.ids import is_valid_correlation_id, new_id
from chatter.observability.logging import get_logger

CORRELATION_HEADER = "x-correlation-id"
log = get_logger("chatter.http")


def correlation_id_from_headers(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == CORRELATION_HEADER.encode():
            candidate = value.decode("latin-1")
            if is_valid_correlation_id(candidate):
                return candidate
            break
    return new_id()


def internal_error_body(correlation_id: str) -> bytes:
    body = {
        "error": {
            "code": "internal_error",
            "message": "An unexpected error occurred.",
            "details": None,
            "correlation_id": correlation_id,
        }
    }
    return json.dumps(body).encode()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = correlation_id_from_headers(scope.get("headers", []))
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        started = False

        async def send_with_header(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k != CORRELATION_HEADER.encode()
                ]
                headers.append((CORRELATION_HEADER.encode(), correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(
            correlation_id=correlation_id, method=scope["method"], path=scope["path"]
        ):
            try:
                await self.app(scope, receive, send_with_header)
            except Exception:
                log.exception("unhandled_error")
                if not started:
                    await _send_internal_error(send_with_header, correlation_id)


async def _send_internal_error(send: Any, correlation_id: str) -> None:
    body = internal_error_body(correlation_id)
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

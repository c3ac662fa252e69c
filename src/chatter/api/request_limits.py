"""Request size limits at the ASGI edge, before the app reads anything: the body (413
`payload_too_large`, from Content-Length or as soon as a streamed body passes the limit,
never reading it in full) and the headers (431 `headers_too_large`, by count and by total
bytes). Pure ASGI, so streaming responses pass straight through.

The HTTP server buffers a request's headers before any app sees them: `chatter serve`
also sets uvicorn's own header limit where its parser has one (h11); see docs/limits.md."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatter.settings import InputLimitSettings


class _BodyTooLarge(Exception):
    pass


def _error(status: int, code: str, message: str, scope: Scope) -> tuple[Message, Message]:
    correlation_id = scope.get("state", {}).get("correlation_id")
    body = json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "details": None,
                "correlation_id": correlation_id,
            }
        }
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def _headers_refusal(scope: Scope, limits: InputLimitSettings) -> str | None:
    headers = scope.get("headers", [])
    if len(headers) > limits.max_header_count:
        return f"More than {limits.max_header_count} request headers."
    size = sum(len(name) + len(value) for name, value in headers)
    if size > limits.max_header_bytes:
        return f"Request headers larger than {limits.max_header_bytes} bytes."
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: InputLimitSettings) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (refusal := _headers_refusal(scope, self.limits)) is not None:
            await self._refuse(send, scope, 431, "headers_too_large", refusal)
            return
        max_bytes = self.limits.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > max_bytes:
            await self._refuse(send, scope, 413, "payload_too_large", self._too_large())
            return
        await self._limited(scope, receive, send, max_bytes)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.limits.max_body_bytes} bytes."

    async def _limited(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        """Count a body that came without Content-Length (chunked) as it is read: past the
        limit the app's reading fails, and whatever it would answer becomes the 413."""
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own answer to the failed read: the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(send, scope, 413, "payload_too_large", self._too_large())

    @staticmethod
    async def _refuse(send: Send, scope: Scope, status: int, code: str, message: str) -> None:
        start, body = _error(status, code, message, scope)
        await send(start)
        await send(body)


# Headers between the app's limit and this much more are refused by the middleware (431,
# in the error shape); past it, h11 refuses them itself before they are buffered further.
H11_HEADER_SLACK = 64 * 1024


def h11_header_limit(limits: InputLimitSettings) -> int:
    """uvicorn's `h11_max_incomplete_event_size` for `chatter serve`. Only h11 has a header
    size limit to set (httptools buffers what comes, and the middleware refuses it)."""
    return limits.max_header_bytes + H11_HEADER_SLACK

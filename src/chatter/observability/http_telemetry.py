"""ASGI middleware: per request, the server span (continuing an incoming W3C `traceparent`),
the HTTP metrics by route template, the active-streams gauge and one log line.

Pure ASGI, inside the correlation-id middleware (so its log line carries the correlation
id), and it attaches the server span as the current context for the whole request,
streaming included, so the spans the request's work starts are its children."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatter.observability import conventions as c
from chatter.observability.logging import get_logger
from chatter.observability.telemetry import Telemetry

log = get_logger("chatter.http")
_PROPAGATOR = TraceContextTextMapPropagator()
EVENT_STREAM = b"text/event-stream"


def route_template(scope: Scope) -> str:
    """The matched route's path format (`/api/v1/conversations/{conversation_id}`), never the
    raw path: its values would make a label per id."""
    route = scope.get("route")
    if isinstance(route, Route | Mount):
        return route.path_format
    # FastAPI puts only its own routes in the scope; a plain Starlette route (/openapi.json,
    # /docs) is found by the endpoint it ran.
    endpoint, app = scope.get("endpoint"), scope.get("app")
    if endpoint is not None and isinstance(app, Starlette):
        for candidate in app.routes:
            if isinstance(candidate, Route) and candidate.endpoint is endpoint:
                return candidate.path_format
    return c.UNMATCHED_ROUTE


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self._metrics = telemetry.metrics
        self._tracer = telemetry.tracing.tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        state: dict[str, Any] = scope.setdefault("state", {})
        parent = _PROPAGATOR.extract(_headers(scope))
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                c.HTTP_REQUEST_METHOD: method,
                c.URL_PATH: scope["path"],
                c.CHATTER_CORRELATION_ID: str(state.get("correlation_id", "")),
            },
        )
        status = 500  # unless a response starts: an exception escaped before it did
        stream_route: str | None = None

        async def send_observed(message: Message) -> None:
            nonlocal status, stream_route
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if _is_event_stream(message):
                    stream_route = route_template(scope)
                    self._metrics.active_streams.labels(stream_route).inc()
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(token)
            if stream_route is not None:
                self._metrics.active_streams.labels(stream_route).dec()
            self._finish(scope, span, method, status, time.perf_counter() - started)

    def _finish(
        self, scope: Scope, span: trace.Span, method: str, status: int, elapsed_s: float
    ) -> None:
        route = route_template(scope)
        self._metrics.http_requests.labels(method, route, str(status)).inc()
        self._metrics.http_duration.labels(method, route).observe(elapsed_s)
        span.update_name(f"{method} {route}")
        span.set_attribute(c.HTTP_ROUTE, route)
        span.set_attribute(c.HTTP_RESPONSE_STATUS_CODE, status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        # The request's one log line; method, path and correlation id are bound by the
        # correlation-id middleware around this one. Never a query string or a body.
        log.info(
            "request",
            route=route,
            status=status,
            duration_ms=round(elapsed_s * 1000, 1),
            user_id=scope["state"].get("user_id"),
        )


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return bool(value.startswith(EVENT_STREAM))
    return False

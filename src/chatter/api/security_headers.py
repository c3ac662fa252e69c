"""Browser-facing hardening: the CORS allow-list and the security headers every response
carries.

CORS: named origins may send credentials; `'*'` allows any origin *without* credentials
(Chatter authenticates with a bearer header, never a cookie, so a page on another origin
needs none — and `'*'` with credentials would let any site act with a browser's cookies
if one were ever added).

Headers (pure ASGI, so streams pass straight through): `X-Content-Type-Options: nosniff`,
`X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` on every response; a
Content-Security-Policy where the route set none (the dashboard sets its own, stricter for
its page): JSON and other non-HTML answers load nothing, HTML pages (/docs, /redoc, whose
Swagger and ReDoc bootstraps are inline scripts) may not be framed; and HSTS when the
request came over https (or, with `trust_forwarded_proto`, a proxy says it did).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatter.settings import SecuritySettings, Settings

ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = "frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, security: SecuritySettings) -> None:
        self.app = app
        self._hsts = (
            f"max-age={security.hsts_max_age_s}; includeSubDomains"
            if security.hsts_max_age_s
            else None
        )
        self._trust_forwarded = security.trust_forwarded_proto

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self._is_https(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS:
                    headers.setdefault(name, value)
                if "content-security-policy" not in headers:
                    html = headers.get("content-type", "").startswith("text/html")
                    headers["Content-Security-Policy"] = PAGE_CSP if html else API_CSP
                if https and self._hsts is not None:
                    headers.setdefault("Strict-Transport-Security", self._hsts)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _is_https(self, scope: Scope) -> bool:
        scheme: str = scope.get("scheme", "http")
        if scheme == "https":
            return True  # uvicorn sets it from X-Forwarded-Proto for --forwarded-allow-ips
        if not self._trust_forwarded:
            return False
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        for name, value in headers:
            if name == b"x-forwarded-proto":
                # A chain of proxies appends: the first entry is what the client used.
                first: str = value.decode("latin-1").split(",")[0]
                return first.strip().lower() == "https"
        return False


def install_browser_security(app: FastAPI, settings: Settings) -> None:
    """Call before the telemetry and correlation middlewares are added (they stay outer)."""
    origins = settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=origins != ["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            # What browser clients may read: the ids, and when to retry after a refusal.
            expose_headers=[
                "X-Correlation-ID",
                "X-Chatter-Conversation-Id",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
        )
    app.add_middleware(SecurityHeadersMiddleware, security=settings.security)

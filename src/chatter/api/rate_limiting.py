"""Rate limits at the HTTP edge: the dependency that admits a model-calling request, the
client address throttles count by, and the `RateLimit-*` headers of limited routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep, bearer
from chatter.services.credentials import parse_api_key_prefix
from chatter.services.rate_limits import Admission

HEADERS_STATE = "rate_limit_headers"


def client_address(request: Request) -> str:
    """The peer's address. Behind a reverse proxy, let uvicorn take it from the proxy's
    `X-Forwarded-For` (FORWARDED_ALLOW_IPS), or every client shares the proxy's."""
    return request.client.host if request.client else "unknown"


async def admitted(
    request: Request,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Admission:
    """Counts the request in its user's (and API key's) windows, or refuses it with 429."""
    # Authenticated already: the bearer is valid, and an API key's prefix names it.
    prefix = parse_api_key_prefix(credentials.credentials) if credentials else None
    admission = await container.rate_limits.admit(
        session=session, user=user, api_key_prefix=prefix, correlation_id=correlation_id
    )
    if admission.quota is not None:
        request.state.rate_limit_headers = admission.quota.headers()
    return admission


RateLimitAdmission = Annotated[Admission, Depends(admitted)]


class RateLimitHeadersMiddleware:
    """Adds the `RateLimit-*` headers a limited route's admission left in the request
    state to its response, streams included (pure ASGI: nothing is buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            headers = scope.get("state", {}).get(HEADERS_STATE)
            if message["type"] == "http.response.start" and headers:
                names = {name.lower().encode("latin-1") for name in headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                added = [(k.lower().encode("latin-1"), v.encode()) for k, v in headers.items()]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)

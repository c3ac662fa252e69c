"""Prometheus metrics: for admins, or a scraper presenting the configured scrape token."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from chatter.api.deps import ContainerDep, SessionDep, bearer, get_current_user
from chatter.api.schemas.common import error_responses
from chatter.domain.enums import UserRole
from chatter.errors import Forbidden
from chatter.observability.metrics import CONTENT_TYPE
from chatter.storage import outbox

router = APIRouter(tags=["monitoring"])


async def require_scraper(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    token = container.settings.metrics.scrape_token
    if (
        token is not None
        and token.get_secret_value()
        and credentials is not None
        and credentials.scheme.lower() == "bearer"
        and hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode())
    ):
        return
    user = await get_current_user(
        request, container, session, request.state.correlation_id, credentials
    )
    if user.role != UserRole.ADMIN.value:
        raise Forbidden("Only admins (or the configured scrape token) may read metrics.")


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_scraper)],
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **error_responses(401, 403, 503),
    },
)
async def metrics(container: ContainerDep, session: SessionDep) -> Response:
    # Computed at scrape time: a count on the events table's unpublished index.
    backlog = await outbox.count_unpublished(session)
    await session.commit()
    # In multiprocess mode the scrape reads every worker's files: off the event loop.
    body = await asyncio.to_thread(container.telemetry.metrics.exposition, outbox_backlog=backlog)
    return Response(content=body, media_type=CONTENT_TYPE)

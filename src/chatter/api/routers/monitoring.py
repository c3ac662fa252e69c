"""/api/v1/monitoring: executions with their metrics, and statistics over a window.

Users see their own executions; admins everyone's, or one user's with `user_id`. A user
naming someone else's `user_id` gets a 403 (refused, not silently narrowed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chatter.api.deps import ContainerDep, CurrentUser, SessionDep
from chatter.api.routers.conversations import Cursor, Limit
from chatter.api.schemas.common import (
    DATABASE_RESPONSES,
    TEXT_PATTERN,
    PageOut,
    UtcDatetime,
    error_responses,
)
from chatter.api.schemas.conversations import WORKFLOW_NAME
from chatter.api.schemas.monitoring import StatsOut, WorkflowMetricsOut
from chatter.domain.enums import ExecutionStatus, UserRole
from chatter.domain.ids import ULID_PATTERN
from chatter.domain.monitoring import StatsWindow
from chatter.services.monitoring import WorkflowFilters

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], responses=DATABASE_RESPONSES)

UserId = Annotated[
    str | None,
    Query(
        pattern=ULID_PATTERN.pattern,
        description="Admins: this user's executions only (default: everyone's). Others may "
        "only name themselves (403 otherwise).",
    ),
]


@router.get("/workflows", responses=error_responses(400, 401, 403, 422))
async def list_workflows(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: ExecutionStatus | None = None,
    workflow: Annotated[str | None, Query(pattern=WORKFLOW_NAME)] = None,
    provider: Annotated[str | None, Query(max_length=64, pattern=TEXT_PATTERN)] = None,
    model: Annotated[str | None, Query(max_length=128, pattern=TEXT_PATTERN)] = None,
    since: Annotated[
        UtcDatetime | None,
        Query(description="Only executions started at or after this (ISO 8601, with offset)."),
    ] = None,
    user_id: UserId = None,
) -> PageOut[WorkflowMetricsOut]:
    """Executions newest first with their metrics, read from the database. `provider` and
    `model` select executions with at least one model call to them."""
    filters = WorkflowFilters(
        user_id=user_id,
        status=status.value if status is not None else None,
        workflow=workflow,
        provider=provider,
        model=model,
        since=since,
    )
    page = await container.monitoring.list_workflows(
        session=session, user=user, filters=filters, limit=limit, cursor=cursor
    )
    items = [WorkflowMetricsOut.model_validate(m) for m in page.items]
    return PageOut[WorkflowMetricsOut](items=items, next_cursor=page.next_cursor)


@router.get("/stats", responses=error_responses(401, 403, 422))
async def workflow_stats(
    user: CurrentUser,
    container: ContainerDep,
    window: Annotated[StatsWindow, Query(description="How far back.")] = StatsWindow.HOUR_1,
    user_id: UserId = None,
) -> StatsOut:
    """Executions started in the window: counts by status, error rate, duration and
    time-to-first-token percentiles, tokens and cost by provider, model and workflow, the
    newest executions; for admins, security events by type. Always from the database."""
    stats = await container.monitoring.stats(user=user, window=window, user_id=user_id)
    return StatsOut.of(window, stats, admin=user.role == UserRole.ADMIN.value)

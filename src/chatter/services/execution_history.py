"""The user's execution history: newest first, filtered by status, definition and start."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import ExecutionStatus
from chatter.domain.ids import is_valid_id
from chatter.errors import BadRequest
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.storage.models import User, WorkflowExecution


async def execution_history(
    session: AsyncSession,
    user: User,
    *,
    limit: int,
    cursor: str | None,
    status: ExecutionStatus | None,
    definition_id: str | None,
    since: datetime | None,
) -> Page[WorkflowExecution]:
    query = select(WorkflowExecution).where(WorkflowExecution.user_id == user.id)
    if status is not None:
        query = query.where(WorkflowExecution.status == status.value)
    if definition_id is not None:
        query = query.where(WorkflowExecution.definition_id == definition_id)
    if since is not None:
        query = query.where(WorkflowExecution.started_at >= since)
    if cursor is not None:
        started_at, last_id = _cursor(cursor)
        query = query.where(
            or_(
                WorkflowExecution.started_at < started_at,
                (WorkflowExecution.started_at == started_at) & (WorkflowExecution.id < last_id),
            )
        )
    query = query.order_by(WorkflowExecution.started_at.desc(), WorkflowExecution.id.desc())
    rows = list(await session.scalars(query.limit(limit + 1)))
    await session.commit()
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor([items[-1].started_at.isoformat(), items[-1].id])
    return Page(items=items, next_cursor=next_cursor)


def _cursor(cursor: str) -> tuple[datetime, str]:
    started_raw, last_id = decode_cursor(cursor, 2)
    invalid = BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    if not isinstance(started_raw, str) or not isinstance(last_id, str) or not is_valid_id(last_id):
        raise invalid
    try:
        started_at = datetime.fromisoformat(started_raw)
    except ValueError as exc:
        raise invalid from exc
    if started_at.tzinfo is None:
        raise invalid
    return started_at, last_id

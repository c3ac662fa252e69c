"""Workflow definitions and their immutable versions: rows in, rows out (no commits)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.storage.models import WorkflowDefinitionRow, WorkflowDefinitionVersion


async def create(
    session: AsyncSession, user_id: str, name: str, description: str, body: dict[str, Any]
) -> WorkflowDefinitionRow:
    now = utcnow()
    row = WorkflowDefinitionRow(
        user_id=user_id,
        name=name,
        description=description,
        current_version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    session.add(WorkflowDefinitionVersion(definition_id=row.id, version=1, body=body))
    await session.flush()
    return row


async def owned(
    session: AsyncSession, user_id: str, definition_id: str, *, deleted: bool = False
) -> WorkflowDefinitionRow | None:
    """The user's definition (a deleted one only with `deleted`)."""
    query = select(WorkflowDefinitionRow).where(
        WorkflowDefinitionRow.id == definition_id, WorkflowDefinitionRow.user_id == user_id
    )
    if not deleted:
        query = query.where(WorkflowDefinitionRow.deleted_at.is_(None))
    row: WorkflowDefinitionRow | None = await session.scalar(query)
    return row


async def version(
    session: AsyncSession, definition_id: str, number: int
) -> WorkflowDefinitionVersion | None:
    found: WorkflowDefinitionVersion | None = await session.get(
        WorkflowDefinitionVersion, (definition_id, number)
    )
    return found


async def add_version(
    session: AsyncSession,
    row: WorkflowDefinitionRow,
    name: str,
    description: str,
    body: dict[str, Any],
) -> WorkflowDefinitionRow | None:
    """The next version, allocated by one guarded UPDATE (two concurrent PUTs get two
    numbers); None when the definition was deleted meanwhile."""
    updated: WorkflowDefinitionRow | None = await session.scalar(
        update(WorkflowDefinitionRow)
        .where(WorkflowDefinitionRow.id == row.id, WorkflowDefinitionRow.deleted_at.is_(None))
        .values(
            current_version=WorkflowDefinitionRow.current_version + 1,
            name=name,
            description=description,
            updated_at=utcnow(),
        )
        .returning(WorkflowDefinitionRow)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if updated is None:
        return None
    session.add(
        WorkflowDefinitionVersion(
            definition_id=updated.id, version=updated.current_version, body=body
        )
    )
    await session.flush()
    return updated


async def soft_delete(session: AsyncSession, definition_id: str) -> bool:
    result = await session.execute(
        update(WorkflowDefinitionRow)
        .where(
            WorkflowDefinitionRow.id == definition_id, WorkflowDefinitionRow.deleted_at.is_(None)
        )
        .values(deleted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def listed(
    user_id: str, after: tuple[datetime, str] | None
) -> Select[WorkflowDefinitionRow, WorkflowDefinitionVersion]:
    """The user's live definitions with their current version, newest change first."""
    query = (
        select(WorkflowDefinitionRow, WorkflowDefinitionVersion)
        .join(
            WorkflowDefinitionVersion,
            (WorkflowDefinitionVersion.definition_id == WorkflowDefinitionRow.id)
            & (WorkflowDefinitionVersion.version == WorkflowDefinitionRow.current_version),
        )
        .where(WorkflowDefinitionRow.user_id == user_id, WorkflowDefinitionRow.deleted_at.is_(None))
    )
    if after is not None:
        updated_at, last_id = after
        query = query.where(
            or_(
                WorkflowDefinitionRow.updated_at < updated_at,
                (WorkflowDefinitionRow.updated_at == updated_at)
                & (WorkflowDefinitionRow.id < last_id),
            )
        )
    return query.order_by(WorkflowDefinitionRow.updated_at.desc(), WorkflowDefinitionRow.id.desc())

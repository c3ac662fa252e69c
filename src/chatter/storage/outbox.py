"""The events table: written in the caller's transaction, read back in id order.

Ids are taken from the one-row `event_sequence` with `UPDATE ... RETURNING`: its row lock
is held until the writer commits, so ids are handed out in commit order and a reader that
has seen id n has seen every committed id below n - replay and resume need no gap logic
beyond "id > n". On SQLite writers are serialised anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.events import (
    DomainEvent,
    EventCategory,
    EventFilter,
    EventType,
    UnifiedEvent,
)
from chatter.storage.columns import table_of
from chatter.storage.models import Event, EventSequence

SEQUENCE_ROW = 1
# Core tables on the hot path: plain rows, no ORM unit of work (a third of the CPU).
SEQUENCE = table_of(EventSequence)
EVENTS = table_of(Event)


async def write_events(session: AsyncSession, events: Sequence[DomainEvent]) -> list[UnifiedEvent]:
    """Add `events` to the caller's transaction; returns them as they will be published.
    Call it as the last write before the commit: on PostgreSQL it holds the sequence row's
    lock until then."""
    if not events:
        return []
    last = (
        await session.execute(
            update(SEQUENCE)
            .where(SEQUENCE.c.id == SEQUENCE_ROW)
            .values(last_id=SEQUENCE.c.last_id + len(events))
            .returning(SEQUENCE.c.last_id)
        )
    ).scalar_one()
    now = utcnow()
    stored = [
        UnifiedEvent(
            id=last - len(events) + 1 + offset,
            category=event.category,
            type=event.type,
            created_at=now,
            correlation_id=event.correlation_id,
            user_id=event.user_id,
            conversation_id=event.conversation_id,
            execution_id=event.execution_id,
            data=event.data,
        )
        for offset, event in enumerate(events)
    ]
    await session.execute(
        insert(EVENTS),
        [
            {
                "id": e.id,
                "category": e.category.value,
                "type": e.type.value,
                "created_at": e.created_at,
                "user_id": e.user_id,
                "conversation_id": e.conversation_id,
                "execution_id": e.execution_id,
                "correlation_id": _clip(e.correlation_id),
                "data": e.data,
            }
            for e in stored
        ],
    )
    return stored


def _clip(value: str | None) -> str | None:
    return value[:128] if value is not None else None


def filtered(query: Select[Event], where: EventFilter) -> Select[Event]:
    if where.user_id is not None:
        query = query.where(Event.user_id == where.user_id)
    if where.categories:
        query = query.where(Event.category.in_([c.value for c in where.categories]))
    if where.types:
        query = query.where(Event.type.in_([t.value for t in where.types]))
    if where.conversation_id is not None:
        query = query.where(Event.conversation_id == where.conversation_id)
    if where.execution_id is not None:
        query = query.where(Event.execution_id == where.execution_id)
    if where.correlation_id is not None:
        query = query.where(Event.correlation_id == where.correlation_id)
    return query


async def events_after(
    session: AsyncSession,
    after_id: int,
    where: EventFilter,
    *,
    limit: int,
    up_to_id: int | None = None,
) -> list[UnifiedEvent]:
    """Events with `after_id < id (<= up_to_id)` that match, oldest first."""
    query = filtered(select(Event).where(Event.id > after_id), where)
    if up_to_id is not None:
        query = query.where(Event.id <= up_to_id)
    rows = await session.scalars(query.order_by(Event.id).limit(limit))
    return [to_unified(row) for row in rows]


async def events_before(
    session: AsyncSession, before_id: int | None, where: EventFilter, *, limit: int
) -> list[UnifiedEvent]:
    """Matching events, newest first, below `before_id` (history pages)."""
    query = filtered(select(Event), where)
    if before_id is not None:
        query = query.where(Event.id < before_id)
    rows = await session.scalars(query.order_by(Event.id.desc()).limit(limit))
    return [to_unified(row) for row in rows]


async def last_event_id(session: AsyncSession) -> int:
    """The highest id committed so far (every lower id is committed too)."""
    return int(await session.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0)


async def count_unpublished(session: AsyncSession) -> int:
    """The backlog: committed events not yet marked published (ix_events_unpublished)."""
    query = select(func.count()).select_from(Event).where(Event.published_at.is_(None))
    return int(await session.scalar(query) or 0)


async def claim_unpublished(
    session: AsyncSession, older_than: datetime, *, limit: int
) -> list[UnifiedEvent]:
    """Committed events not yet marked published: the relay's work. Locked with SKIP
    LOCKED on PostgreSQL, so several workers' relays share the rows instead of doubling."""
    query = (
        select(Event)
        .where(Event.published_at.is_(None), Event.created_at < older_than)
        .order_by(Event.id)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [to_unified(row) for row in await session.scalars(query)]


async def mark_published(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            update(Event)
            .where(Event.id.in_(list(ids)), Event.published_at.is_(None))
            .values(published_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def unmark_published(session: AsyncSession, ids: Sequence[int]) -> None:
    """Give claimed events back to the relay (their publish failed)."""
    if ids:
        await session.execute(
            update(Event)
            .where(Event.id.in_(list(ids)))
            .values(published_at=None)
            .execution_options(synchronize_session=False)
        )


async def delete_older_than(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.execute(delete(Event).where(Event.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


def to_unified(row: Event) -> UnifiedEvent:
    return UnifiedEvent(
        id=row.id,
        category=EventCategory(row.category),
        type=EventType(row.type),
        created_at=row.created_at,
        correlation_id=row.correlation_id,
        user_id=row.user_id,
        conversation_id=row.conversation_id,
        execution_id=row.execution_id,
        data=dict(row.data),
    )

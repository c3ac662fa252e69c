"""Reading lifecycle events: who may see which, history pages, and resumable live streams."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import UserRole
from chatter.domain.events import EventCategory, EventFilter, EventType, UnifiedEvent
from chatter.errors import BadRequest, Forbidden
from chatter.events.bus import EventBus
from chatter.events.stream import EventStream
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.settings import EventSettings
from chatter.storage import outbox
from chatter.storage.models import User

# Event ids are BIGINT on PostgreSQL: a larger number could not even be bound.
MAX_EVENT_ID = 2**63 - 1


@dataclass(frozen=True)
class EventCriteria:
    """What a reader asked for, before authorization narrows it."""

    all_users: bool = False
    categories: tuple[EventCategory, ...] = ()
    types: tuple[EventType, ...] = ()
    conversation_id: str | None = None
    execution_id: str | None = None
    correlation_id: str | None = None


class EventService:
    def __init__(
        self,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        settings: EventSettings,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._settings = settings

    def scope(self, user: User, criteria: EventCriteria) -> EventFilter:
        """The filter `user` may read with: their own events, or (admins asking for
        `all_users`) everyone's, including events that belong to no user."""
        if criteria.all_users and user.role != UserRole.ADMIN.value:
            raise Forbidden("Only admins may read every user's events.", details={"all": True})
        return EventFilter(
            user_id=None if criteria.all_users else user.id,
            categories=criteria.categories,
            types=criteria.types,
            conversation_id=criteria.conversation_id,
            execution_id=criteria.execution_id,
            correlation_id=criteria.correlation_id,
        )

    async def history(
        self, *, session: AsyncSession, where: EventFilter, limit: int, cursor: str | None
    ) -> Page[UnifiedEvent]:
        """Newest first; the cursor names the id to continue below."""
        before_id = _before_id(cursor) if cursor is not None else None
        rows = await outbox.events_before(session, before_id, where, limit=limit + 1)
        # End the read now: on SQLite the transaction holds the process's one connection.
        await session.commit()
        items = rows[:limit]
        next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    def stream(self, where: EventFilter, *, last_event_id: int | None) -> EventStream:
        """Events after `last_event_id` (none: from now on), then live, in id order."""
        return EventStream(
            self._bus,
            self._sessions,
            where,
            last_event_id=last_event_id,
            poll_s=self._settings.heartbeat_s,
        )


def _before_id(cursor: str) -> int:
    (before_id,) = decode_cursor(cursor, 1)
    if (
        not isinstance(before_id, int)
        or isinstance(before_id, bool)
        or not 0 < before_id <= MAX_EVENT_ID
    ):
        raise BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    return before_id

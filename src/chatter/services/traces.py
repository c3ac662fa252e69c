"""Following one correlation id end to end: what a turn recorded, in time order."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import UserRole
from chatter.domain.ids import is_valid_correlation_id
from chatter.domain.monitoring import WorkflowMetrics
from chatter.errors import NotFound
from chatter.events.publisher import EventPublisher
from chatter.services.security_events import access_denied
from chatter.storage import monitoring, traces
from chatter.storage.models import User

# Rows of each kind in one trace: an id is client-chosen and may be reused many times.
TRACE_LIMIT = 1000


@dataclass(frozen=True)
class Trace:
    correlation_id: str
    rows: traces.TraceRows
    executions: list[WorkflowMetrics]


class TraceService:
    def __init__(self, events: EventPublisher) -> None:
        self._events = events

    async def get(
        self,
        *,
        session: AsyncSession,
        user: User,
        correlation_id: str,
        request_correlation_id: str,
    ) -> Trace:
        """The caller's records under `correlation_id` (admins: everyone's); 404 when there
        are none, and a trace of someone else's turn is on record as `access_denied`."""
        not_found = NotFound("Trace not found.", details={"correlation_id": correlation_id})
        if not is_valid_correlation_id(correlation_id):
            raise not_found
        admin = user.role == UserRole.ADMIN.value
        rows = await traces.trace_rows(
            session, correlation_id, user_id=None if admin else user.id, limit=TRACE_LIMIT
        )
        if rows.empty:
            if not admin and await traces.anyone_recorded(session, correlation_id):
                denied = access_denied(request_correlation_id, user.id, "trace", correlation_id)
                await self._events.commit(session, [denied])
            raise not_found
        metrics = await monitoring.metrics_of(session, rows.executions)
        await session.commit()  # end the read: on SQLite it holds the one connection
        return Trace(correlation_id, rows, metrics)

"""After commit: publish to the bus; a relay republishes what was committed but never marked
published (a crash between commit and publish, a bus outage); old events are cleaned up.

Delivery is at least once; subscribers deduplicate by event id.

Local listeners (metrics, logs) see each event exactly once, in the process that committed it:
not through the bus, which with Redis brings every event to every worker (summed across
workers, a bus subscriber would count each event once per worker), and not again when the
relay republishes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.domain.events import DomainEvent, UnifiedEvent
from chatter.events.bus import EventBus
from chatter.events.periodic import every
from chatter.observability.logging import get_logger
from chatter.settings import EventSettings
from chatter.storage import outbox

log = get_logger("chatter.events")
RELAY_BATCH = 500
EventListener = Callable[[Sequence[UnifiedEvent]], None]
STOP_TIMEOUT_S = 30.0


class EventPublisher:
    def __init__(
        self,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        settings: EventSettings,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._settings = settings
        self._unmarked: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._listeners: list[EventListener] = []

    @property
    def bus(self) -> EventBus:
        return self._bus

    def add_listener(self, listener: EventListener) -> None:
        """Call `listener` synchronously with the events this process commits, right after
        each commit. It must be quick: it runs on the committing request's path."""
        self._listeners.append(listener)

    async def commit(self, session: AsyncSession, events: Sequence[DomainEvent]) -> None:
        """Commit the session's changes with `events` written last (on PostgreSQL the
        event-id counter is then the last lock the transaction takes), then publish them."""
        await session.flush()
        stored = await outbox.write_events(session, events)
        await session.commit()
        await self.published(stored)

    async def published(self, events: Sequence[UnifiedEvent]) -> None:
        """Call after the transaction that wrote `events` committed. Never raises: a failed
        publish is retried by the relay from the table."""
        if not events:
            return
        self._notify(events)
        try:
            await self._bus.publish(events)
        except Exception as exc:  # the bus is down: the relay will publish them
            log.warning("event_publish_failed", count=len(events), error=repr(exc))
            return
        self._unmarked.extend(event.id for event in events)

    def _notify(self, events: Sequence[UnifiedEvent]) -> None:
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:  # observability must never fail what was already committed
                log.exception("event_listener_failed", listener=repr(listener))

    async def start(self) -> None:
        await self._bus.start()
        self._stopping.clear()
        loops: list[tuple[Callable[[], Awaitable[object]], float]] = [
            (self.flush_marks, self._settings.mark_interval_s),
            (self.relay_once, self._settings.relay_interval_s),
            (self.cleanup_once, self._settings.cleanup_interval_s),
        ]
        self._tasks = [
            asyncio.create_task(
                every(interval, step, self._stopping, failure="event_maintenance_failed")
            )
            for step, interval in loops
        ]

    async def aclose(self) -> None:
        """Stop the loops at their next wait rather than cancel them mid-transaction."""
        self._stopping.set()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.gather(*self._tasks)
        except TimeoutError:  # a database step that never ends: give up on it
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.flush_marks()
        await self._bus.aclose()

    async def flush_marks(self) -> int:
        """Mark what was published, in one batch (cheaper than a write per commit)."""
        ids, self._unmarked = self._unmarked, []
        if ids:
            async with self._sessions() as session:
                await outbox.mark_published(session, ids)
                await session.commit()
        return len(ids)

    async def relay_once(self) -> int:
        """Publish committed events nobody marked published within the grace period.

        They are claimed (marked, with SKIP LOCKED on PostgreSQL so several workers' relays
        share them) in one short transaction, published outside any transaction - a slow
        bus must never hold a database connection - and released if the publish fails."""
        older_than = utcnow() - timedelta(seconds=self._settings.relay_grace_s)
        async with self._sessions() as session:
            events = await outbox.claim_unpublished(session, older_than, limit=RELAY_BATCH)
            await outbox.mark_published(session, [event.id for event in events])
            await session.commit()
        if not events:
            return 0
        try:
            await self._bus.publish(events)
        except Exception:
            async with self._sessions() as session:
                await outbox.unmark_published(session, [event.id for event in events])
                await session.commit()
            raise
        log.info("events_relayed", count=len(events))
        return len(events)

    async def cleanup_once(self) -> int:
        cutoff = utcnow() - timedelta(days=self._settings.retention_days)
        async with self._sessions() as session:
            deleted = await outbox.delete_older_than(session, cutoff)
            await session.commit()
        if deleted:
            log.info("events_cleaned_up", count=deleted)
        return deleted

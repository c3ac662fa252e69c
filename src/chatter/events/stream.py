"""One reader's event stream: what it missed (replayed from the events table), then live
events from the bus - in id order, each matching event exactly once.

The bus alone is not enough: publishing happens after commit, so two writers' events can
arrive out of order, a failed publish arrives only when the relay retries, and a slow
subscription drops its overflow (`lagged`). The table is the truth, and its ids are in
commit order (storage/outbox.py): once a reader knows that id n is committed, every id
below n is committed too. So the stream keeps one *global* cursor - every id up to it has
been examined, matching or not - and whenever the bus hands it an id beyond cursor + 1, it
reads the gap from the table before moving on. When no progress is made for `poll_s`, it
asks the table for anything newer (the tail of a lagged subscription, a failed publish).

Reads are short transactions of their own, never held while waiting: on SQLite every
transaction queues for the process's one connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.events import EventFilter, UnifiedEvent
from chatter.events.bus import EventBus, Subscription
from chatter.storage import outbox

PAGE_SIZE = 500


class EventStream:
    """`async with stream:` subscribes and fixes the starting point; then
    `async for event in stream.events()` replays and follows until the consumer stops.
    Leaving the block closes the bus subscription."""

    def __init__(
        self,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        where: EventFilter,
        *,
        last_event_id: int | None,
        poll_s: float,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._where = where
        self._resume_after = last_event_id
        self._poll_s = poll_s
        self._page_size = page_size
        self._subscription: Subscription | None = None
        self._cursor = 0
        self._replay_to = 0

    @property
    def cursor(self) -> int:
        """Every event id up to here has been delivered or found not to match."""
        return self._cursor

    async def __aenter__(self) -> Self:
        # Subscribe before reading the table: an event committed while we replay is then
        # either at or below the replay's high mark or waiting in the subscription.
        self._subscription = self._bus.subscribe()
        try:
            high = await self._high_mark()
        except BaseException:
            self._close()
            raise
        # A fresh reader starts at "now"; a cursor from beyond the table (a database
        # restored from a backup) would silence the stream, so it starts at "now" too.
        resume = self._resume_after
        self._cursor = high if resume is None else min(resume, high)
        self._replay_to = high
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    async def events(self) -> AsyncGenerator[UnifiedEvent]:
        """What was missed, then live events, in id order; ends only when closed."""
        if self._subscription is None:
            raise RuntimeError("use `async with stream:` before reading its events")
        async for event in self._from_table(up_to=self._replay_to):
            yield event
        async for event in self._live(self._subscription):
            yield event

    async def _live(self, subscription: Subscription) -> AsyncIterator[UnifiedEvent]:
        last_progress = time.monotonic()
        while True:
            wait = self._poll_s - (time.monotonic() - last_progress)
            try:
                async with asyncio.timeout(max(wait, 0)):
                    first = await subscription.get()
            except TimeoutError:
                subscription.lagged = False
                async for event in self._catch_up():
                    yield event
                last_progress = time.monotonic()
                continue
            before = self._cursor
            # Whatever else is already queued: sorting it first often closes a gap without
            # a read (two writers publishing in the opposite order of their commits).
            for event in sorted([first, *subscription.drain()], key=lambda e: e.id):
                async for delivered in self._accept(event):
                    yield delivered
            if self._cursor > before:
                last_progress = time.monotonic()

    async def _accept(self, event: UnifiedEvent) -> AsyncIterator[UnifiedEvent]:
        if event.id <= self._cursor:
            return  # a duplicate (relay, replay overlap) or already read from the table
        if event.id > self._cursor + 1:
            # `event` is committed, so is every id below it: read the gap from the table.
            async for missed in self._from_table(up_to=event.id - 1):
                yield missed
        self._cursor = event.id
        if self._where.matches(event):
            yield event

    async def _catch_up(self) -> AsyncIterator[UnifiedEvent]:
        high = await self._high_mark()
        if high > self._cursor:
            async for event in self._from_table(up_to=high):
                yield event

    async def _from_table(self, *, up_to: int) -> AsyncIterator[UnifiedEvent]:
        """Matching events in (cursor, up_to], page by page; the cursor ends at `up_to`.
        Each page is its own transaction, closed before its events are handed on."""
        while self._cursor < up_to:
            async with self._sessions() as session:
                page = await outbox.events_after(
                    session, self._cursor, self._where, limit=self._page_size, up_to_id=up_to
                )
            for event in page:
                self._cursor = event.id
                yield event
            if len(page) < self._page_size:
                self._cursor = up_to

    async def _high_mark(self) -> int:
        async with self._sessions() as session:
            return await outbox.last_event_id(session)

"""Helpers for the events API tests: commit events the way services do (outbox row in a
transaction, publish after commit), and an SSE listener that reads in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import SseEvent, read_events

from chatter.container import Container
from chatter.domain.events import DomainEvent, EventFilter, EventType, UnifiedEvent
from chatter.domain.ids import new_id
from chatter.storage import outbox
from chatter.storage.models import Event, User


def event_for(
    user_id: str | None, type: EventType = EventType.MESSAGE_CREATED, **fields: Any
) -> DomainEvent:
    correlation_id = fields.pop("correlation_id", new_id())
    return DomainEvent(type=type, correlation_id=correlation_id, user_id=user_id, **fields)


async def commit_events(
    container: Container, events: Sequence[DomainEvent], *, publish: bool = True
) -> list[UnifiedEvent]:
    """One transaction, then publish - the way every service writes its events."""
    async with container.sessions() as session:
        stored = await outbox.write_events(session, events)
        await session.commit()
    if publish:
        await container.publisher.published(stored)
    return stored


async def high_mark(container: Container) -> int:
    async with container.sessions() as session:
        return await outbox.last_event_id(session)


async def matching_ids(engine: AsyncEngine, where: EventFilter, after: int) -> list[int]:
    async with engine.connect() as connection:
        query = outbox.filtered(select(Event).where(Event.id > after), where)
        rows = await connection.execute(query.order_by(Event.id))
        return [row.id for row in rows]


async def make_admin(engine: AsyncEngine, user_id: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == user_id).values(role="admin"))


class Listener:
    """An SSE connection to /api/v1/events, read by a background task."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.frames: list[SseEvent] = []
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async for frame in read_events(self.response):
            self.frames.append(frame)
            self._changed.set()

    @property
    def events(self) -> list[SseEvent]:
        return [f for f in self.frames if f.event not in ("comment", "retry")]

    @property
    def ids(self) -> list[int]:
        return [int(f.id) for f in self.events if f.id is not None]

    async def wait_until(self, done: Callable[[Listener], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not done(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; received ids {self.ids}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_ids(self, count: int, within: float = 10.0) -> list[int]:
        await self.wait_until(lambda listener: len(listener.ids) >= count, within)
        return self.ids


@asynccontextmanager
async def listen(
    base_url: str,
    headers: dict[str, str],
    params: Any = None,
) -> AsyncIterator[Listener]:
    """Connected and subscribed (the `retry` hint arrived) when it yields."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        http.stream("GET", "/api/v1/events", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        listener = Listener(response)
        task = asyncio.create_task(listener.run())
        try:
            await listener.wait_until(lambda lsn: any(f.event == "retry" for f in lsn.frames))
            yield listener
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError, httpx.HTTPError):
                await task

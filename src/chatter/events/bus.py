"""The event bus port, and the local fan-out every backend delivers through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self

from chatter.domain.events import UnifiedEvent

DEFAULT_QUEUE = 10_000


class Subscription:
    """One subscriber's view of the bus: committed events, in the order this process
    received them. Publishing is at-least-once and may reorder across writers; readers
    that need every event in id order fill gaps from the events table (ids are in commit
    order, see storage/outbox.py). A subscriber too slow to keep up loses the overflow and
    is flagged `lagged` - it can catch up from the table the same way."""

    def __init__(self, fanout: LocalFanout, max_queued: int) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[UnifiedEvent] = asyncio.Queue(max_queued)
        self.lagged = False

    def offer(self, event: UnifiedEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self) -> UnifiedEvent:
        return await self._queue.get()

    def drain(self) -> list[UnifiedEvent]:
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def close(self) -> None:
        self._fanout.remove(self)

    def __aiter__(self) -> AsyncIterator[UnifiedEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[UnifiedEvent]:
        while True:
            yield await self.get()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalFanout:
    """Hands each event to every subscriber of this process."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, max_queued: int = DEFAULT_QUEUE) -> Subscription:
        subscription = Subscription(self, max_queued)
        self._subscribers.add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def deliver(self, events: Sequence[UnifiedEvent]) -> None:
        for subscription in list(self._subscribers):
            for event in events:
                subscription.offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


class EventBus(Protocol):
    """Carries committed events to subscribers, in this process and (Redis) in others."""

    async def start(self) -> None: ...

    async def publish(self, events: Sequence[UnifiedEvent]) -> None: ...

    def subscribe(self, max_queued: int = DEFAULT_QUEUE) -> Subscription: ...

    async def aclose(self) -> None: ...


class InProcessBus:
    """The default: subscribers in this process only."""

    def __init__(self) -> None:
        self._fanout = LocalFanout()

    async def start(self) -> None:
        return None

    async def publish(self, events: Sequence[UnifiedEvent]) -> None:
        self._fanout.deliver(events)

    def subscribe(self, max_queued: int = DEFAULT_QUEUE) -> Subscription:
        return self._fanout.subscribe(max_queued)

    async def aclose(self) -> None:
        return None

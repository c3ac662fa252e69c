"""EventStream on its own, against the real database and the in-process bus: replay across
many pages, a subscription that overflowed, subscription lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatter.domain.events import DomainEvent, EventFilter, EventType, UnifiedEvent
from chatter.domain.ids import new_id
from chatter.events.bus import DEFAULT_QUEUE, InProcessBus, Subscription
from chatter.events.stream import EventStream
from chatter.storage import outbox
from chatter.storage.db import create_session_factory


class TinyQueueBus(InProcessBus):
    """Subscriptions that overflow after two events: a subscriber that fell behind."""

    def subscribe(self, max_queued: int = DEFAULT_QUEUE) -> Subscription:
        return super().subscribe(2)


@pytest.fixture(scope="module")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


async def write(
    sessions: async_sessionmaker[AsyncSession], user_id: str, count: int
) -> list[UnifiedEvent]:
    events = [
        DomainEvent(type=EventType.MESSAGE_CREATED, correlation_id=None, user_id=user_id)
        for _ in range(count)
    ]
    async with sessions() as session:
        stored = await outbox.write_events(session, events)
        await session.commit()
    return stored


async def take(events: AsyncIterator[UnifiedEvent], count: int) -> list[int]:
    async with asyncio.timeout(10):
        return [(await anext(events)).id for _ in range(count)]


def ids(events: Sequence[UnifiedEvent]) -> list[int]:
    return [e.id for e in events]


async def test_replay_reads_page_after_page(sessions: async_sessionmaker[AsyncSession]) -> None:
    user, other = new_id(), new_id()
    mark = ids(await write(sessions, other, 1))[0]
    mine = []
    for _ in range(4):
        mine += await write(sessions, user, 3)
        await write(sessions, other, 2)
    where = EventFilter(user_id=user)
    stream = EventStream(InProcessBus(), sessions, where, last_event_id=mark, poll_s=5, page_size=2)
    async with stream:
        events = stream.events()
        assert await take(events, len(mine)) == ids(mine)
        await events.aclose()
    assert stream.cursor == mine[-1].id


async def test_an_overflowed_subscription_still_delivers_everything_in_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = TinyQueueBus()
    user = new_id()
    start = await write(sessions, user, 1)
    stream = EventStream(
        bus, sessions, EventFilter(user_id=user), last_event_id=start[0].id, poll_s=0.2
    )
    async with stream:
        events = stream.events()
        burst = await write(sessions, user, 10)
        await bus.publish(burst)  # two fit, eight are dropped
        assert await take(events, 10) == ids(burst)
        tail = await write(sessions, user, 3)
        await bus.publish(tail[:1])  # the rest of the tail was never published
        assert await take(events, 3) == ids(tail)
        await events.aclose()


async def test_leaving_the_block_ends_the_subscription(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = InProcessBus()
    stream = EventStream(bus, sessions, EventFilter(user_id=new_id()), last_event_id=None, poll_s=1)
    async with stream:
        assert bus._fanout.subscriber_count == 1
    assert bus._fanout.subscriber_count == 0
    with pytest.raises(RuntimeError):
        await anext(stream.events())

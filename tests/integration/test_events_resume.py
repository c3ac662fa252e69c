"""Resuming /api/v1/events with Last-Event-ID, and the stream's order guarantees: no
duplicates, no gaps - while writers keep committing, when publication comes out of order,
when a publish fails."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from events_support import commit_events, event_for, high_mark, listen, matching_ids
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.app import create_app
from chatter.container import Container
from chatter.domain.events import EventFilter, EventType, UnifiedEvent
from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage.models import Event
from conftest import Actor, UserFactory, make_settings, serve_app


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    events = {
        "heartbeat_s": 0.25,
        "relay_grace_s": 0.3,
        "relay_interval_s": 0.2,
        "mark_interval_s": 0.1,
        "redis_stream": f"chatter:test:{new_id()}",
    }
    return make_settings(database_url, events=events)


@pytest.fixture(scope="module")
async def served(settings: Settings) -> AsyncIterator[tuple[FastAPI, str]]:
    app = create_app(settings)
    async with serve_app(app) as url:
        yield app, url


@pytest.fixture(scope="module")
async def app_and_client(
    served: tuple[FastAPI, str],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app, url = served
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield app, client


@pytest.fixture(scope="module")
def base_url(served: tuple[FastAPI, str]) -> str:
    return served[1]


@pytest.fixture(scope="module")
def container(served: tuple[FastAPI, str]) -> Container:
    built: Container = served[0].state.container
    return built


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def bob(make_user: UserFactory) -> Actor:
    return await make_user()


def ids(events: Sequence[UnifiedEvent]) -> list[int]:
    return [e.id for e in events]


async def test_last_event_id_header_replays_what_was_missed_then_follows(
    base_url: str, container: Container, alice: Actor, bob: Actor
) -> None:
    stored = await commit_events(
        container, [event_for(alice.id), event_for(bob.id), event_for(alice.id)] * 2
    )
    last_seen = stored[0].id
    headers = {**alice.headers, "Last-Event-ID": str(last_seen)}
    async with listen(base_url, headers) as listener:
        missed = [e.id for e in stored[1:] if e.user_id == alice.id]
        await listener.wait_for_ids(len(missed))
        live = await commit_events(container, [event_for(bob.id), event_for(alice.id)])
        await listener.wait_for_ids(len(missed) + 1)
    assert listener.ids == [*missed, live[1].id]


async def test_last_event_id_query_works_and_the_header_wins(
    base_url: str, container: Container, alice: Actor
) -> None:
    stored = await commit_events(container, [event_for(alice.id) for _ in range(4)])
    async with listen(base_url, alice.headers, {"last_event_id": stored[1].id}) as by_query:
        await by_query.wait_for_ids(2)
    assert by_query.ids == ids(stored[2:])
    # A browser reconnects to the same URL and sends the newest id it saw in the header.
    headers = {**alice.headers, "Last-Event-ID": str(stored[2].id)}
    async with listen(base_url, headers, {"last_event_id": stored[0].id}) as both:
        await both.wait_for_ids(1)
        (live,) = await commit_events(container, [event_for(alice.id)])
        await both.wait_for_ids(2)
    assert both.ids == [stored[3].id, live.id]


async def test_a_cursor_beyond_the_table_starts_now(
    base_url: str, container: Container, alice: Actor
) -> None:
    future = await high_mark(container) + 1_000
    async with listen(base_url, {**alice.headers, "Last-Event-ID": str(future)}) as listener:
        (live,) = await commit_events(container, [event_for(alice.id)])
        await listener.wait_for_ids(1)
    assert listener.ids == [live.id]


async def _write_until(
    stop: asyncio.Event, container: Container, users: list[str], seed: int
) -> None:
    """Many small transactions, each published after its commit, interleaving with the
    other writers (so publication often comes out of id order)."""
    rng = random.Random(seed)
    types = [EventType.MESSAGE_CREATED, EventType.WORKFLOW_COMPLETED, EventType.TOOL_CALLED]
    while not stop.is_set():
        batch = [event_for(rng.choice(users), rng.choice(types)) for _ in range(rng.randint(1, 3))]
        await commit_events(container, batch)
        await asyncio.sleep(rng.random() * 0.01)


async def test_resume_while_events_keep_committing(
    base_url: str, container: Container, engine: AsyncEngine, alice: Actor, bob: Actor
) -> None:
    where = EventFilter(
        user_id=alice.id, types=(EventType.MESSAGE_CREATED, EventType.WORKFLOW_COMPLETED)
    )
    wanted = [("type", "message_created"), ("type", "workflow_completed")]
    mark = await high_mark(container)
    stop = asyncio.Event()
    writers = [
        asyncio.create_task(_write_until(stop, container, [alice.id, bob.id], seed))
        for seed in range(4)
    ]
    try:
        async with listen(base_url, alice.headers, [*wanted, ("last_event_id", mark)]) as first:
            await first.wait_for_ids(15)
        last_seen = first.ids[-1]
        await asyncio.sleep(0.3)  # disconnected while the writers go on
        reconnect_mark = await high_mark(container)
        headers = {**alice.headers, "Last-Event-ID": str(last_seen)}
        async with listen(base_url, headers, wanted) as second:
            # Let the switch from replay to live happen under load, then stop writing.
            await second.wait_for_ids(15)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*writers)
            expected = await matching_ids(engine, where, last_seen)
            await second.wait_until(lambda lsn: len(lsn.ids) >= len(expected))
            await asyncio.sleep(0.5)  # anything extra (a duplicate) would show up now
    finally:
        stop.set()
        await asyncio.gather(*writers, return_exceptions=True)
    assert first.ids == (await matching_ids(engine, where, mark))[: len(first.ids)]
    assert second.ids == expected
    assert all(a < b for a, b in zip(second.ids, second.ids[1:], strict=False))
    # The writers really did commit through the switch: some events were missed while
    # disconnected (replayed), more were committed after the reconnect began.
    assert any(i <= reconnect_mark for i in expected)
    assert any(i > reconnect_mark for i in expected)


async def test_out_of_order_publication_arrives_in_order(
    base_url: str, container: Container, alice: Actor
) -> None:
    mark = await high_mark(container)
    async with listen(base_url, alice.headers, {"last_event_id": mark}) as listener:
        # Two writers committed n then n+1; n+1's publish happens first.
        (first,) = await commit_events(container, [event_for(alice.id)], publish=False)
        (second,) = await commit_events(container, [event_for(alice.id)], publish=False)
        await container.publisher.bus.publish([second])
        await listener.wait_for_ids(2)
        await container.publisher.bus.publish([first])  # late: already read from the table
        await container.publisher.bus.publish([second])  # a relay's second delivery
        (third,) = await commit_events(container, [event_for(alice.id)])
        await listener.wait_for_ids(3)
        await asyncio.sleep(0.3)
    assert listener.ids == [first.id, second.id, third.id]


async def _wait_published(engine: AsyncEngine, event_id: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            published = await connection.scalar(
                select(Event.published_at).where(Event.id == event_id)
            )
        if published is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} was never relayed")


@pytest.mark.parametrize("followed", [False, True], ids=["alone", "followed"])
async def test_a_failed_publish_is_delivered_exactly_once(
    base_url: str,
    container: Container,
    engine: AsyncEngine,
    alice: Actor,
    monkeypatch: pytest.MonkeyPatch,
    followed: bool,
) -> None:
    """Alone: the stream finds it in the table while idle. Followed by an event that is
    published: that event's id reveals the gap. Either way the relay publishes it again
    later, and that copy is dropped."""
    bus = container.publisher.bus
    real_publish = bus.publish
    failures: list[int] = []

    lost_correlation_id = new_id()

    async def publish_failing_once(events: Sequence[UnifiedEvent]) -> None:
        # Only the first publish of `lost`: the relay may be republishing other events.
        if not failures and any(e.correlation_id == lost_correlation_id for e in events):
            failures.append(events[0].id)
            raise ConnectionError("the bus is down")
        await real_publish(events)

    mark = await high_mark(container)
    async with listen(base_url, alice.headers, {"last_event_id": mark}) as listener:
        monkeypatch.setattr(bus, "publish", publish_failing_once)
        lost_event = event_for(alice.id, correlation_id=lost_correlation_id)
        (lost,) = await commit_events(container, [lost_event])
        if followed:
            (after,) = await commit_events(container, [event_for(alice.id)])
            await listener.wait_for_ids(2)
            assert listener.ids == [lost.id, after.id]
        else:
            await listener.wait_for_ids(1)
        assert failures == [lost.id]
        await _wait_published(engine, lost.id)  # the relay published it after all
        (sentinel,) = await commit_events(container, [event_for(alice.id)])
        await listener.wait_until(lambda lsn: sentinel.id in lsn.ids)
    expected = [lost.id, after.id, sentinel.id] if followed else [lost.id, sentinel.id]
    assert listener.ids == expected

"""Two app instances on one database and one Redis stream: an event committed and published
by one reaches an SSE subscriber of the other. Runs when CHATTER_TEST_REDIS_URL is set."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from events_support import commit_events, event_for, high_mark, listen, matching_ids
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.app import create_app
from chatter.container import Container
from chatter.domain.events import EventFilter
from chatter.domain.ids import new_id
from chatter.events.redis_bus import RedisStreamBus
from chatter.settings import Settings
from conftest import Actor, UserFactory, make_settings, serve_app

pytestmark = pytest.mark.skipif(
    not os.environ.get("CHATTER_TEST_REDIS_URL"), reason="CHATTER_TEST_REDIS_URL is not set"
)


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    # A heartbeat (and so a table poll) far beyond the test's waits: what arrives came
    # through Redis, or through a gap read triggered by an event that came through Redis.
    events = {"heartbeat_s": 60, "redis_stream": f"chatter:test:{new_id()}"}
    return make_settings(database_url, events=events)


@pytest.fixture(scope="module")
async def instances(settings: Settings) -> AsyncIterator[list[tuple[FastAPI, str]]]:
    first, second = create_app(settings), create_app(settings)
    async with serve_app(first) as first_url, serve_app(second) as second_url:
        yield [(first, first_url), (second, second_url)]


@pytest.fixture(scope="module")
async def app_and_client(
    instances: list[tuple[FastAPI, str]],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app, url = instances[0]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield app, client


def container_of(app: FastAPI) -> Container:
    built: Container = app.state.container
    return built


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


async def test_both_instances_use_the_redis_bus(instances: list[tuple[FastAPI, str]]) -> None:
    for app, _url in instances:
        assert isinstance(container_of(app).publisher.bus, RedisStreamBus)


async def test_an_event_from_one_instance_reaches_a_subscriber_of_the_other(
    instances: list[tuple[FastAPI, str]], alice: Actor
) -> None:
    (writer_app, _), (_, reader_url) = instances
    async with listen(reader_url, alice.headers) as listener:
        stored = await commit_events(
            container_of(writer_app), [event_for(alice.id), event_for(alice.id)]
        )
        await listener.wait_for_ids(2, within=5)
    assert listener.ids == [e.id for e in stored]


async def test_writers_on_both_instances_reach_a_subscriber_in_order(
    instances: list[tuple[FastAPI, str]], engine: AsyncEngine, alice: Actor
) -> None:
    containers = [container_of(app) for app, _url in instances]
    mark = await high_mark(containers[0])
    other = new_id()  # another user's events interleave

    async def write(container: Container, count: int) -> None:
        for n in range(count):
            await commit_events(container, [event_for(alice.id if n % 3 else other)])

    async with listen(instances[1][1], alice.headers, {"last_event_id": mark}) as listener:
        await asyncio.gather(*(write(c, 20) for c in containers))
        expected = await matching_ids(engine, EventFilter(user_id=alice.id), mark)
        await listener.wait_until(lambda lsn: len(lsn.ids) >= len(expected), within=10)
        await asyncio.sleep(0.3)
    assert listener.ids == expected

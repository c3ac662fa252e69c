"""GET /api/v1/events over real HTTP: live delivery with SSE ids, filters, who sees what,
heartbeats, refused requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from events_support import commit_events, event_for, high_mark, listen, make_admin, matching_ids
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import read_events

from chatter.app import create_app
from chatter.container import Container
from chatter.domain.events import EventCategory, EventFilter, EventType
from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage import outbox
from conftest import Actor, UserFactory, make_settings, serve_app


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    # A Redis stream of its own: event ids only mean something within one database.
    events = {"heartbeat_s": 0.25, "redis_stream": f"chatter:test:{new_id()}"}
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
    """Users are made through the served app (overrides conftest's ASGI app)."""
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


async def test_live_events_arrive_with_their_ids_types_and_json(
    base_url: str, container: Container, alice: Actor
) -> None:
    async with listen(base_url, alice.headers) as listener:
        stored = await commit_events(
            container,
            [
                event_for(alice.id, EventType.WORKFLOW_STARTED, execution_id=new_id()),
                event_for(alice.id, EventType.LLM_CALL_COMPLETED, data={"total_tokens": 12}),
                event_for(alice.id, EventType.WORKFLOW_COMPLETED),
            ],
        )
        await listener.wait_for_ids(3)
    assert listener.ids == [e.id for e in stored]
    assert [f.event for f in listener.events] == [e.type.value for e in stored]
    assert [f.data for f in listener.events] == [e.to_json() for e in stored]
    assert listener.frames[0].event == "retry"  # the first frame: subscribed


async def test_a_stream_without_last_event_id_starts_now(
    base_url: str, container: Container, alice: Actor
) -> None:
    await commit_events(container, [event_for(alice.id)])
    async with listen(base_url, alice.headers) as listener:
        (later,) = await commit_events(container, [event_for(alice.id)])
        await listener.wait_for_ids(1)
    assert listener.ids == [later.id]


async def test_users_never_see_each_others_events(
    base_url: str, container: Container, alice: Actor, bob: Actor
) -> None:
    async with (
        listen(base_url, alice.headers) as for_alice,
        listen(base_url, bob.headers) as for_bob,
    ):
        a1, b1, _system, a2, b2 = await commit_events(
            container,
            [
                event_for(alice.id),
                event_for(bob.id),
                event_for(None, EventType.LOGIN_FAILED),
                event_for(alice.id),
                event_for(bob.id),
            ],
        )
        # Ids arrive in order: once the last one is in, every earlier one was examined.
        await for_alice.wait_until(lambda lsn: a2.id in lsn.ids)
        await for_bob.wait_until(lambda lsn: b2.id in lsn.ids)
    assert for_alice.ids == [a1.id, a2.id]
    assert for_bob.ids == [b1.id, b2.id]
    assert {f.data["user_id"] for f in for_alice.events} == {alice.id}


async def test_all_is_for_admins_only(
    base_url: str, container: Container, engine: AsyncEngine, make_user: UserFactory, bob: Actor
) -> None:
    carol = await make_user()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        refused = await http.get("/api/v1/events", params={"all": "true"}, headers=carol.headers)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert error["correlation_id"] == refused.headers["x-correlation-id"]

    await make_admin(engine, carol.id)
    async with (
        listen(base_url, carol.headers, {"all": "true"}) as everyone,
        listen(base_url, carol.headers) as own,
    ):
        stored = await commit_events(
            container,
            [event_for(bob.id), event_for(None, EventType.LOGIN_FAILED), event_for(carol.id)],
        )
        await everyone.wait_for_ids(3)
        await own.wait_for_ids(1)
    assert everyone.ids == [e.id for e in stored]
    assert own.ids == [stored[2].id]  # without all=true an admin reads their own


FILTERS: list[tuple[str, list[tuple[str, str]]]] = [
    ("category", [("category", "security")]),
    ("categories", [("category", "security"), ("category", "tool")]),
    ("types", [("type", "workflow_started"), ("type", "workflow_failed")]),
    ("type_and_category", [("type", "message_created"), ("category", "chat")]),
]


@pytest.mark.parametrize(("name", "params"), FILTERS, ids=[name for name, _ in FILTERS])
async def test_category_and_type_filters_live(
    base_url: str,
    container: Container,
    engine: AsyncEngine,
    alice: Actor,
    name: str,
    params: list[tuple[str, str]],
) -> None:
    mark = await high_mark(container)
    async with listen(base_url, alice.headers, params) as listener:
        await commit_events(container, [event_for(alice.id, t) for t in EventType])
        where = EventFilter(
            user_id=alice.id,
            categories=tuple(EventCategory(v) for k, v in params if k == "category"),
            types=tuple(EventType(v) for k, v in params if k == "type"),
        )
        expected = await matching_ids(engine, where, mark)
        sentinel = await commit_events(container, [event_for(alice.id, EventType.TOKEN_REFUSED)])
        await listener.wait_until(
            lambda lsn: lsn.ids[-1:] == [sentinel[0].id] or lsn.ids == expected
        )
    assert expected, name  # the filter is not vacuous
    assert listener.ids[: len(expected)] == expected


async def test_id_filters_over_replay(base_url: str, container: Container, alice: Actor) -> None:
    conversation, execution, correlation = new_id(), new_id(), f"corr-{new_id()}"
    mark = await high_mark(container)
    stored = await commit_events(
        container,
        [
            event_for(alice.id, conversation_id=conversation),
            event_for(alice.id, execution_id=execution),
            event_for(alice.id, correlation_id=correlation),
            event_for(alice.id, conversation_id=conversation, execution_id=execution),
            event_for(alice.id),
        ],
    )
    cases = {
        "conversation_id": (conversation, [stored[0].id, stored[3].id]),
        "execution_id": (execution, [stored[1].id, stored[3].id]),
        "correlation_id": (correlation, [stored[2].id]),
    }
    for field, (value, expected) in cases.items():
        params = {field: value, "last_event_id": str(mark)}
        async with listen(base_url, alice.headers, params) as listener:
            await listener.wait_for_ids(len(expected))
            # One more matching event, live: it must come right after the replay.
            (live,) = await commit_events(container, [event_for(alice.id, **{field: value})])
            await listener.wait_for_ids(len(expected) + 1)
        assert listener.ids == [*expected, live.id], field


async def test_heartbeats_during_silence(base_url: str, alice: Actor) -> None:
    async with listen(base_url, alice.headers, {"type": "api_key_revoked"}) as listener:
        await listener.wait_until(
            lambda lsn: sum(f.event == "comment" for f in lsn.frames) >= 3, within=5
        )
    assert listener.ids == []


BOTH = ("/api/v1/events", "/api/v1/events/history")
STREAM = ("/api/v1/events",)


@pytest.mark.parametrize(
    ("params", "headers", "paths"),
    [
        ({"category": "nonsense"}, {}, BOTH),
        ({"type": ["message_created", "no_such_type"]}, {}, BOTH),
        ({"conversation_id": "not-an-id"}, {}, BOTH),
        ({"execution_id": "x" * 26}, {}, BOTH),
        ({"correlation_id": "spaces are not allowed"}, {}, BOTH),
        ({"all": "maybe"}, {}, BOTH),
        ({"limit": "0"}, {}, ("/api/v1/events/history",)),
        ({"limit": "101"}, {}, ("/api/v1/events/history",)),
        ({"last_event_id": "-1"}, {}, STREAM),
        ({"last_event_id": "ten"}, {}, STREAM),
        ({"last_event_id": str(2**63)}, {}, STREAM),
        ({}, {"Last-Event-ID": "abc"}, STREAM),
    ],
)
async def test_bad_filter_values_are_422(
    base_url: str,
    alice: Actor,
    params: dict[str, Any],
    headers: dict[str, str],
    paths: tuple[str, ...],
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for path in paths:
            answer = await http.get(path, params=params, headers={**alice.headers, **headers})
            assert answer.status_code == 422, (path, params, answer.text)
            assert answer.json()["error"]["code"] == "validation_error"


async def test_the_stream_needs_a_user(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        answer = await http.get("/api/v1/events")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_client_leaving_ends_its_subscription(
    base_url: str, container: Container, alice: Actor
) -> None:
    fanout = container.publisher.bus._fanout  # type: ignore[attr-defined]
    before = fanout.subscriber_count
    async with listen(base_url, alice.headers):
        assert fanout.subscriber_count == before + 1
    for _ in range(200):
        if fanout.subscriber_count == before:
            break
        await asyncio.sleep(0.02)
    assert fanout.subscriber_count == before


async def test_a_database_failure_ends_the_stream_cleanly(
    base_url: str, alice: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the 200 there is no error status to send: the stream ends (the client then
    reconnects with Last-Event-ID), the server logs it, nothing crashes."""

    async def unreachable(session: object) -> int:
        raise OSError("the database is unreachable")

    monkeypatch.setattr(outbox, "last_event_id", unreachable)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream("GET", "/api/v1/events", headers=alice.headers) as response,
    ):
        assert response.status_code == 200
        frames = [frame async for frame in read_events(response)]
    assert [f for f in frames if f.event != "comment"] == []
    monkeypatch.undo()
    async with listen(base_url, alice.headers):
        pass  # and the next connection works

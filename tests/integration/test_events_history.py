"""GET /api/v1/events/history: the stream's filters and authorization as JSON pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from events_support import commit_events, event_for, make_admin
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.container import Container
from chatter.domain.events import EventType
from chatter.domain.ids import new_id
from chatter.services.pagination import encode_cursor
from conftest import Actor, UserFactory

HISTORY = "/api/v1/events/history"


@pytest.fixture(scope="module")
def container(app: FastAPI) -> Container:
    built: Container = app.state.container
    return built


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def bob(make_user: UserFactory) -> Actor:
    return await make_user()


async def history(client: httpx.AsyncClient, actor: Actor, **params: Any) -> dict[str, Any]:
    answer = await client.get(HISTORY, params=params, headers=actor.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_pages_newest_first_until_the_last(
    client: httpx.AsyncClient, container: Container, alice: Actor
) -> None:
    conversation = new_id()
    stored = await commit_events(
        container, [event_for(alice.id, conversation_id=conversation) for _ in range(7)]
    )
    newest_first = [e.to_json() for e in reversed(stored)]
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"conversation_id": conversation, "limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        body = await history(client, alice, **params)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [item for page in pages for item in page] == newest_first


async def test_default_page_is_fifty(
    client: httpx.AsyncClient, container: Container, alice: Actor
) -> None:
    correlation = f"many-{new_id()}"
    await commit_events(
        container, [event_for(alice.id, correlation_id=correlation) for _ in range(51)]
    )
    body = await history(client, alice, correlation_id=correlation)
    assert len(body["items"]) == 50
    assert body["next_cursor"] is not None
    rest = await history(client, alice, correlation_id=correlation, cursor=body["next_cursor"])
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_filters(client: httpx.AsyncClient, container: Container, alice: Actor) -> None:
    execution, correlation = new_id(), f"filters-{new_id()}"
    stored = await commit_events(
        container,
        [
            event_for(alice.id, EventType.WORKFLOW_STARTED, execution_id=execution),
            event_for(alice.id, EventType.TOOL_CALLED, execution_id=execution),
            event_for(alice.id, EventType.WORKFLOW_COMPLETED, execution_id=execution),
            event_for(alice.id, EventType.WORKFLOW_COMPLETED, correlation_id=correlation),
        ],
    )

    async def ids(**params: Any) -> list[int]:
        return [item["id"] for item in (await history(client, alice, **params))["items"]]

    assert await ids(execution_id=execution) == [e.id for e in reversed(stored[:3])]
    assert await ids(execution_id=execution, category="tool") == [stored[1].id]
    assert await ids(execution_id=execution, type=["workflow_started", "workflow_completed"]) == [
        stored[2].id,
        stored[0].id,
    ]
    assert await ids(correlation_id=correlation) == [stored[3].id]
    assert await ids(correlation_id=correlation, category=["chat", "security"]) == []


async def test_users_are_kept_apart_and_all_is_for_admins(
    client: httpx.AsyncClient,
    container: Container,
    engine: AsyncEngine,
    make_user: UserFactory,
    alice: Actor,
    bob: Actor,
) -> None:
    conversation = new_id()
    stored = await commit_events(
        container,
        [
            event_for(alice.id, conversation_id=conversation),
            event_for(bob.id, conversation_id=conversation),
            event_for(None, EventType.LOGIN_FAILED, conversation_id=conversation),
        ],
    )
    for_bob = await history(client, bob, conversation_id=conversation)
    assert [item["id"] for item in for_bob["items"]] == [stored[1].id]
    refused = await client.get(HISTORY, params={"all": "true"}, headers=bob.headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"

    admin = await make_user()
    await make_admin(engine, admin.id)
    everyone = await history(client, admin, all="true", conversation_id=conversation)
    assert [item["id"] for item in everyone["items"]] == [e.id for e in reversed(stored)]
    own = await history(client, admin, conversation_id=conversation)
    assert own["items"] == []


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        encode_cursor(["12"]),
        encode_cursor([0]),
        encode_cursor([True]),
        encode_cursor([2**63]),
        encode_cursor([1, 2]),
    ],
)
async def test_a_bad_cursor_is_a_400(client: httpx.AsyncClient, alice: Actor, cursor: str) -> None:
    answer = await client.get(HISTORY, params={"cursor": cursor}, headers=alice.headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"

"""Conversations as a user sees them: CRUD, pagination, messages, owner isolation."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from chatter.domain.enums import UserRole
from chatter.domain.ids import new_id
from chatter.storage.models import Conversation, Message
from conftest import Actor, UserFactory

CONVERSATIONS = "/api/v1/conversations"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "correlation_id"}, error
    assert error["code"] == code, error
    return dict(error)


async def create_conversation(client: httpx.AsyncClient, actor: Actor, **body: Any) -> Any:
    response = await client.post(CONVERSATIONS, json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def list_all(
    client: httpx.AsyncClient, actor: Actor, url: str, limit: int, **params: Any
) -> tuple[list[Any], int]:
    """Follow `next_cursor` to the end; returns the items and the number of pages."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(url, params=query, headers=actor.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "pagination does not terminate"


async def add_messages(app: FastAPI, conversation_id: str, count: int) -> list[str]:
    container = app.state.container
    async with container.sessions() as session:
        messages = [
            Message(
                conversation_id=conversation_id,
                sequence=sequence,
                role="user" if sequence % 2 else "assistant",
                content=f"message {sequence}",
            )
            for sequence in range(1, count + 1)
        ]
        session.add_all(messages)
        await session.commit()
        return [message.id for message in messages]


async def count_rows(app: FastAPI, model: Any, conversation_id: str) -> int:
    column = Conversation.id if model is Conversation else Message.conversation_id
    async with app.state.container.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(model).where(column == conversation_id)
        )
    return int(count or 0)


def at(timestamp: str) -> datetime:
    parsed = datetime.fromisoformat(timestamp)
    assert parsed.tzinfo is not None, timestamp
    return parsed


def cursor_of(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# --- CRUD ---------------------------------------------------------------------------------


async def test_create_get_patch_delete(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    created = await create_conversation(
        client,
        actor,
        title="Trip plans",
        default_model="demo-1",
        default_system_prompt="Be brief.",
    )
    assert created["user_id"] == actor.id
    assert created["title"] == "Trip plans"
    assert created["status"] == "active"
    assert created["default_model"] == "demo-1"
    assert created["message_count"] == 0
    assert created["total_tokens"] == 0
    assert created["last_message_at"] is None

    url = f"{CONVERSATIONS}/{created['id']}"
    fetched = await client.get(url, headers=actor.headers)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == created

    patched = await client.patch(
        url, json={"title": "Holiday", "status": "archived"}, headers=actor.headers
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["title"] == "Holiday"
    assert body["status"] == "archived"
    assert body["default_system_prompt"] == "Be brief."  # untouched fields stay
    assert at(body["updated_at"]) > at(created["updated_at"])
    assert (await client.get(url, headers=actor.headers)).json() == body

    deleted = await client.delete(url, headers=actor.headers)
    assert deleted.status_code == 204, deleted.text
    assert_error(await client.get(url, headers=actor.headers), 404, "not_found")
    assert_error(await client.delete(url, headers=actor.headers), 404, "not_found")


async def test_create_with_empty_body(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    created = await create_conversation(client, actor)
    assert created["title"] is None
    assert created["status"] == "active"


async def test_patch_rejects_bad_values(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    url = f"{CONVERSATIONS}/{(await create_conversation(client, actor))['id']}"
    assert_error(
        await client.patch(url, json={"status": "deleted"}, headers=actor.headers),
        422,
        "validation_error",
    )
    assert_error(
        await client.patch(url, json={"status": None}, headers=actor.headers), 400, "bad_request"
    )
    assert_error(
        await client.patch(url, json={"default_workflow": "Not A Name"}, headers=actor.headers),
        422,
        "validation_error",
    )
    assert_error(
        await client.patch(url, json={"title": "x" * 201}, headers=actor.headers),
        422,
        "validation_error",
    )


async def test_unknown_conversation_is_404(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    url = f"{CONVERSATIONS}/{new_id()}"
    assert_error(await client.get(url, headers=actor.headers), 404, "not_found")
    assert_error(
        await client.patch(url, json={"title": "x"}, headers=actor.headers), 404, "not_found"
    )
    assert_error(await client.get(f"{url}/messages", headers=actor.headers), 404, "not_found")


async def test_conversations_require_authentication(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(CONVERSATIONS), 401, "unauthorized")
    assert_error(await client.post(CONVERSATIONS, json={}), 401, "unauthorized")


# --- listing and pagination ---------------------------------------------------------------


async def test_list_is_newest_first_by_updated_at(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    first = await create_conversation(client, actor, title="first")
    second = await create_conversation(client, actor, title="second")
    third = await create_conversation(client, actor, title="third")

    response = await client.get(CONVERSATIONS, headers=actor.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert [c["id"] for c in page["items"]] == [third["id"], second["id"], first["id"]]
    assert page["next_cursor"] is None

    # Touching the oldest one moves it to the top.
    touched = await client.patch(
        f"{CONVERSATIONS}/{first['id']}", json={"title": "first, edited"}, headers=actor.headers
    )
    assert touched.status_code == 200, touched.text
    page = (await client.get(CONVERSATIONS, headers=actor.headers)).json()
    assert [c["id"] for c in page["items"]] == [first["id"], third["id"], second["id"]]


async def test_list_limit_bounds(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    for limit in (0, 101, 1000):
        response = await client.get(CONVERSATIONS, params={"limit": limit}, headers=actor.headers)
        assert_error(response, 422, "validation_error")
    ok = await client.get(CONVERSATIONS, params={"limit": 100}, headers=actor.headers)
    assert ok.status_code == 200, ok.text


async def test_cursor_pagination_returns_every_conversation_once_in_order(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    created = [(await create_conversation(client, actor, title=f"c{i}"))["id"] for i in range(25)]

    items, pages = await list_all(client, actor, CONVERSATIONS, limit=7)
    ids = [item["id"] for item in items]
    assert pages == 4
    assert len(ids) == len(set(ids)) == 25
    assert ids == list(reversed(created))
    keys = [(at(item["updated_at"]), item["id"]) for item in items]
    assert keys == sorted(keys, reverse=True)

    # An exact multiple of the page size ends without an empty extra page.
    items, pages = await list_all(client, actor, CONVERSATIONS, limit=5)
    assert [item["id"] for item in items] == ids
    assert pages == 5

    # A cursor keeps working when new conversations arrive in between.
    first = (await client.get(CONVERSATIONS, params={"limit": 10}, headers=actor.headers)).json()
    await create_conversation(client, actor, title="late")
    rest = (
        await client.get(
            CONVERSATIONS,
            params={"limit": 100, "cursor": first["next_cursor"]},
            headers=actor.headers,
        )
    ).json()
    assert [c["id"] for c in first["items"] + rest["items"]] == ids


async def test_status_filter(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    active = await create_conversation(client, actor, title="active")
    archived = await create_conversation(client, actor, title="archived")
    response = await client.patch(
        f"{CONVERSATIONS}/{archived['id']}", json={"status": "archived"}, headers=actor.headers
    )
    assert response.status_code == 200, response.text

    only_archived = await client.get(
        CONVERSATIONS, params={"status": "archived"}, headers=actor.headers
    )
    assert only_archived.status_code == 200, only_archived.text
    assert [c["id"] for c in only_archived.json()["items"]] == [archived["id"]]

    only_active = await client.get(
        CONVERSATIONS, params={"status": "active"}, headers=actor.headers
    )
    assert [c["id"] for c in only_active.json()["items"]] == [active["id"]]

    everything = (await client.get(CONVERSATIONS, headers=actor.headers)).json()
    assert {c["id"] for c in everything["items"]} == {active["id"], archived["id"]}

    bad = await client.get(CONVERSATIONS, params={"status": "gone"}, headers=actor.headers)
    assert_error(bad, 422, "validation_error")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "!!!",
        cursor_of([]),
        cursor_of(["only-one"]),
        cursor_of(["not a date", "x"]),
        cursor_of([1, 2]),
        cursor_of(["2024-01-01T00:00:00", "x"]),  # no UTC offset
        cursor_of({"a": 1}),  # type: ignore[arg-type]
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_bad_list_cursor_is_400(
    client: httpx.AsyncClient, make_user: UserFactory, cursor: str
) -> None:
    actor = await make_user()
    response = await client.get(CONVERSATIONS, params={"cursor": cursor}, headers=actor.headers)
    assert_error(response, 400, "bad_request")


async def test_overlong_cursor_is_422(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    response = await client.get(CONVERSATIONS, params={"cursor": "a" * 513}, headers=actor.headers)
    assert_error(response, 422, "validation_error")


# --- messages -----------------------------------------------------------------------------


async def test_messages_are_paginated_by_sequence(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    conversation = await create_conversation(client, actor)
    url = f"{CONVERSATIONS}/{conversation['id']}/messages"

    empty = await client.get(url, headers=actor.headers)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"items": [], "next_cursor": None}

    ids = await add_messages(app, conversation["id"], 23)
    items, pages = await list_all(client, actor, url, limit=10)
    assert pages == 3
    assert [m["sequence"] for m in items] == list(range(1, 24))
    assert [m["id"] for m in items] == ids
    assert items[0]["content"] == "message 1"
    assert items[0]["role"] == "user"
    assert items[0]["conversation_id"] == conversation["id"]

    default_page = (await client.get(url, headers=actor.headers)).json()
    assert len(default_page["items"]) == 23
    assert default_page["next_cursor"] is None

    assert_error(
        await client.get(url, params={"limit": 101}, headers=actor.headers),
        422,
        "validation_error",
    )


@pytest.mark.parametrize(
    "cursor",
    ["garbage", cursor_of(["x"]), cursor_of([1, 2]), cursor_of([1.5]), cursor_of([10**30])],
)
async def test_bad_messages_cursor_is_400(
    client: httpx.AsyncClient, make_user: UserFactory, cursor: str
) -> None:
    actor = await make_user()
    conversation = await create_conversation(client, actor)
    response = await client.get(
        f"{CONVERSATIONS}/{conversation['id']}/messages",
        params={"cursor": cursor},
        headers=actor.headers,
    )
    assert_error(response, 400, "bad_request")


async def test_delete_removes_messages(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    doomed = await create_conversation(client, actor)
    kept = await create_conversation(client, actor)
    await add_messages(app, doomed["id"], 4)
    await add_messages(app, kept["id"], 3)
    assert await count_rows(app, Message, doomed["id"]) == 4

    response = await client.delete(f"{CONVERSATIONS}/{doomed['id']}", headers=actor.headers)
    assert response.status_code == 204, response.text

    assert await count_rows(app, Conversation, doomed["id"]) == 0
    assert await count_rows(app, Message, doomed["id"]) == 0
    assert await count_rows(app, Conversation, kept["id"]) == 1
    assert await count_rows(app, Message, kept["id"]) == 3


# --- isolation ----------------------------------------------------------------------------


async def test_other_users_conversation_is_404(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    alice = await make_user()
    bob = await make_user()
    secret_title = f"alice-secret-{new_id()}"
    conversation = await create_conversation(
        client, alice, title=secret_title, default_system_prompt="alice's prompt"
    )
    await add_messages(app, conversation["id"], 2)
    url = f"{CONVERSATIONS}/{conversation['id']}"

    responses = [
        await client.get(url, headers=bob.headers),
        await client.patch(url, json={"title": "pwned"}, headers=bob.headers),
        await client.patch(url, json={"status": "archived"}, headers=bob.headers),
        await client.delete(url, headers=bob.headers),
        await client.get(f"{url}/messages", headers=bob.headers),
    ]
    for response in responses:
        assert_error(response, 404, "not_found")
        for leaked in (secret_title, alice.id, alice.email, "alice's prompt", "message 1"):
            assert leaked not in response.text

    listed = (await client.get(CONVERSATIONS, headers=bob.headers)).json()
    assert listed == {"items": [], "next_cursor": None}
    archived = (
        await client.get(CONVERSATIONS, params={"status": "active"}, headers=bob.headers)
    ).json()
    assert archived["items"] == []

    # Nothing changed for Alice.
    mine = await client.get(url, headers=alice.headers)
    assert mine.status_code == 200
    assert mine.json()["title"] == secret_title
    assert mine.json()["status"] == "active"
    assert await count_rows(app, Message, conversation["id"]) == 2


async def test_admin_can_read_any_conversation(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    owner = await make_user()
    conversation = await create_conversation(client, owner, title="owned")
    await add_messages(app, conversation["id"], 3)

    email = f"admin-{new_id().lower()}@example.com"
    password = "admin password 123"
    container = app.state.container
    async with container.sessions() as session:
        await container.accounts.create_user(
            session=session, email=email, password=password, role=UserRole.ADMIN
        )
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=admin)).json()["role"] == "admin"

    url = f"{CONVERSATIONS}/{conversation['id']}"
    fetched = await client.get(url, headers=admin)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["title"] == "owned"
    assert fetched.json()["user_id"] == owner.id
    messages = await client.get(f"{url}/messages", headers=admin)
    assert messages.status_code == 200, messages.text
    assert [m["sequence"] for m in messages.json()["items"]] == [1, 2, 3]

    # An admin's own list stays their own.
    assert (await client.get(CONVERSATIONS, headers=admin)).json()["items"] == []

"""/api/v1/tool-servers: admins only; every bad registration is a clear 4xx and stores
nothing; stdio commands come from the deployment's allow-list."""

from __future__ import annotations

import httpx
import pytest
from events_support import make_admin
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tools_support import register_server

from chatter.settings import Settings
from chatter.storage.models import Event
from chatter.storage.tool_servers import ToolServer
from conftest import Actor, UserFactory, make_settings

ALLOWED = "/usr/local/bin/allowed-mcp-server"


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, tools={"stdio_allowed_commands": [ALLOWED], "load_timeout_s": 2}
    )


@pytest.fixture(scope="module")
async def admin(make_user: UserFactory, engine: AsyncEngine) -> Actor:
    actor = await make_user()
    await make_admin(engine, actor.id)
    return actor


@pytest.fixture(scope="module")
async def user(make_user: UserFactory) -> Actor:
    return await make_user()


async def count_servers(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(ToolServer)) or 0)


async def test_non_admins_are_refused_on_every_route(
    client: httpx.AsyncClient, user: Actor, engine: AsyncEngine
) -> None:
    body = {"name": "mine", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp"}
    created = await client.post("/api/v1/tool-servers", json=body, headers=user.headers)
    listed = await client.get("/api/v1/tool-servers", headers=user.headers)
    deleted = await client.delete("/api/v1/tool-servers/mine", headers=user.headers)
    for response in (created, listed, deleted):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    anonymous = await client.get("/api/v1/tool-servers")
    assert anonymous.status_code == 401
    assert await count_servers(engine) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Upper", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp"},
        {"name": "two__parts", "transport": "streamable_http", "url": "http://127.0.0.1:9/"},
        {"name": "trailing_", "transport": "streamable_http", "url": "http://127.0.0.1:9/"},
        {"name": "x" * 33, "transport": "streamable_http", "url": "http://127.0.0.1:9/"},
        {"name": "", "transport": "streamable_http", "url": "http://127.0.0.1:9/"},
        {"name": "ok", "transport": "websocket", "url": "ws://127.0.0.1:9/"},
        {"name": "ok", "transport": "streamable_http"},
        {"name": "ok", "transport": "streamable_http", "url": "ftp://127.0.0.1/"},
        {"name": "ok", "transport": "streamable_http", "url": "http://"},
        {"name": "ok", "transport": "streamable_http", "url": "http://h/", "command": ALLOWED},
        {"name": "ok", "transport": "streamable_http", "url": "http://h/", "timeout_s": 0},
        {"name": "ok", "transport": "streamable_http", "url": "http://h/", "timeout_s": "5"},
        {"name": "ok", "transport": "streamable_http", "url": "http://h/", "headers": {"A": "é"}},
        {"name": "ok", "transport": "streamable_http", "url": "http://h/", "headers": {"B C": ""}},
        {"name": "ok", "transport": "stdio"},
        {"name": "ok", "transport": "stdio", "command": ALLOWED, "url": "http://h/"},
        {"name": "ok", "transport": "stdio", "command": ALLOWED, "args": ["a\u0000b"]},
    ],
)
async def test_invalid_registrations_are_422(
    client: httpx.AsyncClient, admin: Actor, engine: AsyncEngine, body: dict[str, object]
) -> None:
    response = await client.post("/api/v1/tool-servers", json=body, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]
    assert await count_servers(engine) == 0


async def test_a_stdio_command_outside_the_allow_list_is_refused(
    client: httpx.AsyncClient, admin: Actor, engine: AsyncEngine
) -> None:
    response = await register_server(client, admin, name="shell", transport="stdio", command="sh")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "stdio_command_not_allowed"
    assert error["details"] == {"command": "sh", "allowed": [ALLOWED]}
    assert await count_servers(engine) == 0


async def test_names_are_unique_and_deletes_answer_404_when_unknown(
    client: httpx.AsyncClient, admin: Actor, engine: AsyncEngine
) -> None:
    # Nothing listens on port 9 (discard): registered anyway, shown as unavailable.
    body = {
        "name": "remote",
        "transport": "streamable_http",
        "url": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": "Bearer secret-token"},
        "timeout_s": 3,
    }
    first = await client.post("/api/v1/tool-servers", json=body, headers=admin.headers)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["status"] == "unavailable"
    assert created["header_names"] == ["Authorization"]
    assert "secret-token" not in first.text  # header values are never shown
    second = await client.post("/api/v1/tool-servers", json=body, headers=admin.headers)
    assert second.status_code == 409
    listed = await client.get("/api/v1/tool-servers", headers=admin.headers)
    assert [s["name"] for s in listed.json()] == ["remote"]
    assert "secret-token" not in listed.text
    assert (
        await client.delete("/api/v1/tool-servers/remote", headers=admin.headers)
    ).status_code == 204
    missing = await client.delete("/api/v1/tool-servers/remote", headers=admin.headers)
    assert missing.status_code == 404
    bad_name = await client.delete("/api/v1/tool-servers/Not%20A%20Name", headers=admin.headers)
    assert bad_name.status_code == 422
    # Both changes are security events of the admin, with the request's correlation id and
    # without the header's value.
    async with engine.connect() as connection:
        events = (
            await connection.execute(
                select(Event).where(Event.type.like("tool_server_%")).order_by(Event.id)
            )
        ).all()
    assert [(e.type, e.category, e.user_id) for e in events] == [
        ("tool_server_registered", "security", admin.id),
        ("tool_server_deleted", "security", admin.id),
    ]
    assert events[0].correlation_id == first.headers["x-correlation-id"]
    assert events[0].data["header_names"] == ["Authorization"]
    assert "secret-token" not in str(events[0].data)

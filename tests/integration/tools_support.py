"""Helpers shared by the tool tests: registering servers, running a tool turn, reading what
a turn recorded about its tool calls (rows, events, trace)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.storage.models import Event, ToolInvocation
from conftest import Actor


async def register_server(
    client: httpx.AsyncClient, admin: Actor, **body: object
) -> httpx.Response:
    return await client.post("/api/v1/tool-servers", json=body, headers=admin.headers)


async def tool_turn(client: httpx.AsyncClient, user: Actor, message: str = "Go") -> dict[str, Any]:
    response = await client.post(
        "/api/v1/chat",
        json={"message": message, "workflow": "chat_with_tools"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def offered_tools(request: dict[str, Any]) -> set[str]:
    """The tool names a model request offered."""
    return {tool["function"]["name"] for tool in request.get("tools", [])}


async def tool_rows(engine: AsyncEngine, execution_id: str) -> list[ToolInvocation]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ToolInvocation)
            .where(ToolInvocation.execution_id == execution_id)
            .order_by(ToolInvocation.created_at, ToolInvocation.id)
        )
        return list(rows)  # type: ignore[arg-type]


async def tool_events(engine: AsyncEngine, execution_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Event.data)
            .where(Event.execution_id == execution_id, Event.type == "tool_called")
            .order_by(Event.id)
        )
        return [row.data for row in rows]


async def traced_tools(
    client: httpx.AsyncClient, user: Actor, correlation_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/traces/{correlation_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["tool_calls"]
    return items

"""Shared by the budget tests: an admin, budgets set through the API, a user's usage."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.container import Container
from chatter.domain.enums import UserRole
from chatter.domain.ids import new_id
from chatter.storage.budget_tables import BudgetReservation
from chatter.storage.models import Event

# Per 1M tokens: every input token costs 0.001, every output token 0.002.
PRICES = {"gpt-4o-mini": {"input": "1000", "output": "2000"}}
# The fake server's default usage: 11 prompt (4 cached) + 7 completion (2 reasoning).
TURN_TOKENS = 18
TURN_COST = "0.025"


def container_of(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


async def make_admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    email, password = f"admin-{new_id().lower()}@example.com", "admin password 123"
    container = container_of(app)
    async with container.sessions() as session:
        await container.accounts.create_user(
            session=session, email=email, password=password, role=UserRole.ADMIN
        )
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def set_budget(
    client: httpx.AsyncClient, admin: dict[str, str], user_id: str, **budget: Any
) -> dict[str, Any]:
    response = await client.put(f"/api/v1/admin/users/{user_id}/budget", json=budget, headers=admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def my_usage(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/auth/me/usage", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def open_reservations(engine: AsyncEngine, user_id: str) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(BudgetReservation.user_id == user_id)
        )
    return int(count or 0)


async def events_of(engine: AsyncEngine, user_id: str, event_type: str) -> list[Any]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Event).where(Event.user_id == user_id, Event.type == event_type)
        )
        return list(rows)

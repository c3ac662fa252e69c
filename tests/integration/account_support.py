"""Helpers for the session, admin and access-matrix tests: sessions and keys made over the
API, admins made in the database (no route makes the first one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.storage.models import Event, User
from conftest import Actor, UserFactory

AUTH = "/api/v1/auth"
ADMIN = "/api/v1/admin"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Credentials:
    """Every way `actor` can authenticate: an access token, a refresh token, an API key."""

    actor: Actor
    access_token: str
    refresh_token: str
    api_key: str
    api_key_id: str


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await client.post(f"{AUTH}/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def credentials_of(client: httpx.AsyncClient, actor: Actor) -> Credentials:
    tokens = await login(client, actor.email, actor.password)
    key = await client.post(f"{AUTH}/api-keys", json={"name": "k"}, headers=actor.headers)
    assert key.status_code == 201, key.text
    return Credentials(
        actor, tokens["access_token"], tokens["refresh_token"], key.json()["key"], key.json()["id"]
    )


async def make_admin(engine: AsyncEngine, user_id: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == user_id).values(role="admin"))


async def new_admin(make_user: UserFactory, engine: AsyncEngine) -> Actor:
    actor = await make_user()
    await make_admin(engine, actor.id)
    return actor


async def events_of_type(
    engine: AsyncEngine, event_type: str, user_id: str
) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Event).where(Event.type == event_type, Event.user_id == user_id)
        )
        return [dict(row._mapping) for row in rows]


def assert_status(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    if code is None:
        return {}
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error

"""Login throttling: repeated failures lock an account (and an address) out for a while,
whatever password comes next; registrations are counted per address."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage.models import Event
from conftest import UserFactory, make_settings, running_app

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
# The defaults (10 failures per 15 minutes lock for 15 minutes), stated here so the test
# reads on its own.
ACCOUNT_LIMITS = {"login_max_failures": 10, "login_window_s": 900, "login_lockout_s": 900}


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return make_settings(database_url, rate_limits=ACCOUNT_LIMITS)


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def events(engine: AsyncEngine, kind: str) -> list[dict[str, Any]]:
    query = select(Event.data).where(Event.type == kind).order_by(Event.id)
    async with engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(query)).scalars()]


def isolated(database_url: str, **limits: object) -> Settings:
    """An app with windows of its own (with Redis too): address lockouts would otherwise
    lock the module's other tests out (every test client is 127.0.0.1)."""
    prefix = f"chatter:test-rl:{new_id().lower()}"
    return make_settings(database_url, rate_limits={"redis_prefix": prefix, **limits})


async def test_thirty_wrong_passwords_lock_the_account(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    user = await make_user()
    registry = app.state.container.telemetry.metrics.registry
    before = registry.get_sample_value("chatter_rate_limited_total", {"scope": "login"}) or 0
    statuses = [
        (await login(client, user.email.upper(), "wrong password")).status_code for _ in range(30)
    ]
    assert statuses == [401] * 10 + [429] * 20
    # The right password during the lockout: refused the same way, so it tells nothing.
    refused = await login(client, user.email, user.password)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 880 <= retry_after <= 900
    assert error["details"] == {"retry_after": retry_after}
    assert "password" not in error["message"].lower()

    failed = [e for e in await events(engine, "login_failed") if e["email"] == user.email]
    assert len(failed) == 10  # only the attempts that were checked
    limited = [e for e in await events(engine, "rate_limited") if e.get("email") == user.email]
    assert len(limited) == 21
    assert limited[0]["scope"] == "login"
    assert limited[0]["subject"] == "account"
    assert limited[0]["limit"] == 10
    after = registry.get_sample_value("chatter_rate_limited_total", {"scope": "login"})
    assert after == before + 21
    # Other accounts, from the same address, still log in.
    other = await make_user()
    assert (await login(client, other.email, other.password)).status_code == 200


async def test_a_success_clears_the_accounts_failures(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    for _ in range(2):
        for _ in range(9):
            assert (await login(client, user.email, "wrong password")).status_code == 401
        assert (await login(client, user.email, user.password)).status_code == 200


async def test_failures_from_one_address_lock_it_out(
    database_url: str, make_user: UserFactory
) -> None:
    users = [await make_user() for _ in range(4)]
    settings = isolated(database_url, login_max_failures=10, login_ip_max_failures=3)
    async with running_app(settings) as (_, client):
        for user in users[:3]:
            assert (await login(client, user.email, "wrong password")).status_code == 401
        # The address is locked: any account, any password.
        refused = await login(client, users[3].email, users[3].password)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert (await login(client, f"nobody-{new_id()}@example.com", "x")).status_code == 429


async def test_registrations_are_counted_per_address(database_url: str) -> None:
    settings = isolated(database_url, register_per_ip_per_hour=2)
    async with running_app(settings) as (_, client):
        for _ in range(2):
            body = {"email": f"r-{new_id().lower()}@example.com", "password": "long enough 123"}
            assert (await client.post(REGISTER, json=body)).status_code == 201
        body = {"email": f"r-{new_id().lower()}@example.com", "password": "long enough 123"}
        refused = await client.post(REGISTER, json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600

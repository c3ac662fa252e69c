"""Rate limits on the model-calling routes: requests and tokens per minute, per user and per
API key, admins' overrides, the refusal's shape, headers, event and metric, and (with Redis)
windows shared by every app instance."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage.models import Event, WorkflowExecution
from conftest import UserFactory, live_server, openai_settings, running_app
from fakes.openai_server import FakeOpenAIServer, FakeReply
from integration.events_support import make_admin
from integration.sse_client import read_events

LIMITS = {"requests_per_minute": 3, "api_key_requests_per_minute": 2, "tokens_per_minute": 1000}


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai, rate_limits=LIMITS)


async def chat(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/api/v1/chat", json={"message": "hi", **body}, headers=headers)


async def rate_limited_events(engine: AsyncEngine, user_id: str) -> list[dict[str, Any]]:
    query = select(Event.data).where(Event.type == "rate_limited", Event.user_id == user_id)
    async with engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(query)).scalars()]


async def closed_tokens(engine: AsyncEngine, execution_id: str) -> int:
    """The execution's total once it is no longer running."""
    query = select(WorkflowExecution.status, WorkflowExecution.total_tokens).where(
        WorkflowExecution.id == execution_id
    )
    for _ in range(200):
        async with engine.connect() as connection:
            status, tokens = (await connection.execute(query)).one()
        if status != "running":
            assert status == "cancelled"
            return int(tokens)
        await asyncio.sleep(0.05)
    raise AssertionError("the turn did not close")


def refused_metric(app: FastAPI, scope: str) -> float:
    registry = app.state.container.telemetry.metrics.registry
    return registry.get_sample_value("chatter_rate_limited_total", {"scope": scope}) or 0.0


def assert_refused(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"]["retry_after"] == retry_after
    assert error["correlation_id"] == response.headers["X-Correlation-ID"]
    return retry_after


async def test_requests_per_minute_per_user(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    engine: AsyncEngine,
    fake: FakeOpenAIServer,
) -> None:
    user = await make_user()
    before = refused_metric(app, "requests")
    for remaining in (2, 1, 0):
        response = await chat(client, user.headers)
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
    refused = await chat(client, user.headers)
    assert_refused(refused)
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    # The stream is refused the same way, with JSON, before it starts.
    streamed = await client.post(
        "/api/v1/chat/stream", json={"message": "hi"}, headers=user.headers
    )
    assert_refused(streamed)
    assert streamed.headers["content-type"].startswith("application/json")
    # Refused before the model: three calls for three admitted turns.
    assert len(fake.requests) == 3
    events = await rate_limited_events(engine, user.id)
    assert len(events) == 2
    assert events[0] == {
        "scope": "requests",
        "subject": "user",
        "limit": 3,
        "retry_after": events[0]["retry_after"],
    }
    assert refused_metric(app, "requests") == before + 2
    # Routes that call no model are not limited.
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 200


async def test_requests_per_minute_per_api_key(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, fake: FakeOpenAIServer
) -> None:
    user = await make_user()
    created = await client.post("/api/v1/auth/api-keys", json={"name": "k"}, headers=user.headers)
    key = created.json()["key"]
    by_key = {"Authorization": f"Bearer {key}"}
    for remaining in (1, 0):
        response = await chat(client, by_key)
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Limit"] == "2"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
    assert_refused(await chat(client, by_key))
    (event,) = await rate_limited_events(engine, user.id)
    assert event["subject"] == "api_key"
    assert event["key_prefix"] == created.json()["prefix"]
    assert key not in str(event)
    # The user's own window counted the key's requests: one more is its last.
    response = await chat(client, user.headers)
    assert response.status_code == 429


async def test_tokens_per_minute_refuse_once_spent(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    engine: AsyncEngine,
    fake: FakeOpenAIServer,
) -> None:
    user = await make_user()
    before = refused_metric(app, "tokens")
    usage = {"prompt_tokens": 700, "completion_tokens": 500, "total_tokens": 1200}
    fake.enqueue(FakeReply(content="a long answer", usage=usage))
    first = await chat(client, user.headers)
    assert first.status_code == 200, first.text
    assert first.json()["execution"]["total_tokens"] == 1200
    # 1,200 of 1,000 tokens spent: the next turn is refused before any model call.
    refused = await chat(client, user.headers)
    assert_refused(refused)
    assert "tokens" in refused.json()["error"]["message"]
    assert len(fake.requests) == 1
    (event,) = await rate_limited_events(engine, user.id)
    assert event["scope"] == "tokens"
    assert event["limit"] == 1000
    assert refused_metric(app, "tokens") == before + 1


async def test_streamed_turns_count_their_tokens(
    client: httpx.AsyncClient, make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    user = await make_user()
    usage = {"prompt_tokens": 600, "completion_tokens": 500, "total_tokens": 1100}
    fake.enqueue(FakeReply(content="streamed answer", usage=usage))
    async with client.stream(
        "POST", "/api/v1/chat/stream", json={"message": "hi"}, headers=user.headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "3"
        body = (await response.aread()).decode()
    assert "event: done" in body
    assert_refused(await chat(client, user.headers))


async def test_a_stream_the_client_left_counts_its_tokens(
    settings: Settings,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    """The client goes away mid-stream: the turn closes as cancelled with estimated usage,
    and those tokens are counted (read back from the closed execution)."""
    user = await make_user()
    fake.default_reply = FakeReply(content="word " * 400, chunk_delay_s=0.02)
    # About 1,200 prompt tokens (estimated): more than the window's 1,000 by themselves.
    message = "tokens " * 1200
    execution_id = ""
    async with (
        live_server(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        async with http.stream(
            "POST", "/api/v1/chat/stream", json={"message": message}, headers=user.headers
        ) as response:
            async for event in read_events(response):
                if event.event == "start":
                    execution_id = event.data["execution_id"]
                if event.event == "delta":
                    break  # leaving the block closes the connection mid-stream
        assert await closed_tokens(engine, execution_id) > 1000
        await fake.wait_for_disconnects(1)
        await asyncio.sleep(0.3)  # the count follows the close in the same task
        refused = await chat(http, user.headers)
        assert_refused(refused)
        assert "tokens" in refused.json()["error"]["message"]


async def test_admins_raise_and_lower_a_users_limits(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    engine: AsyncEngine,
    fake: FakeOpenAIServer,
) -> None:
    admin, user = await make_user(), await make_user()
    await make_admin(engine, admin.id)
    path = f"/api/v1/admin/users/{user.id}/rate-limits"
    read = await client.get(path, headers=admin.headers)
    assert read.status_code == 200, read.text
    assert read.json() == {
        "user_id": user.id,
        "requests_per_minute": 3,
        "tokens_per_minute": 1000,
        "requests_per_minute_override": None,
        "tokens_per_minute_override": None,
    }
    # Not an admin: 403, even for oneself; an unknown user: 404.
    assert (await client.get(path, headers=user.headers)).status_code == 403
    put = await client.put(path, json={"requests_per_minute": 9}, headers=user.headers)
    assert put.status_code == 403
    unknown = f"/api/v1/admin/users/{new_id()}/rate-limits"
    assert (await client.put(unknown, json={}, headers=admin.headers)).status_code == 404
    assert (
        await client.put(path, json={"requests_per_minute": 0}, headers=admin.headers)
    ).status_code == 422

    raised = await client.put(path, json={"requests_per_minute": 5}, headers=admin.headers)
    assert raised.status_code == 200, raised.text
    assert raised.json()["requests_per_minute"] == 5
    assert raised.json()["requests_per_minute_override"] == 5
    for _ in range(5):
        response = await chat(client, user.headers)
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Limit"] == "5"
    assert_refused(await chat(client, user.headers))

    other = await make_user()
    other_path = f"/api/v1/admin/users/{other.id}/rate-limits"
    lowered = await client.put(other_path, json={"requests_per_minute": 1}, headers=admin.headers)
    assert lowered.json()["requests_per_minute"] == 1
    assert (await chat(client, other.headers)).status_code == 200
    assert_refused(await chat(client, other.headers))
    # Back to the default.
    reset = await client.put(other_path, json={"requests_per_minute": None}, headers=admin.headers)
    assert reset.json()["requests_per_minute"] == 3
    assert reset.json()["requests_per_minute_override"] is None


async def test_disabled_limits_refuse_nothing(
    database_url: str, fake_openai: FakeOpenAIServer, make_user: UserFactory
) -> None:
    settings = openai_settings(database_url, fake_openai, rate_limits={**LIMITS, "enabled": False})
    user = await make_user()
    async with running_app(settings) as (_, client):
        for _ in range(5):
            response = await chat(client, user.headers)
            assert response.status_code == 200, response.text
            assert "RateLimit-Limit" not in response.headers


@pytest.mark.skipif(
    not os.environ.get("CHATTER_TEST_REDIS_URL"), reason="needs CHATTER_TEST_REDIS_URL"
)
async def test_limits_hold_across_app_instances_with_redis(
    settings: Settings, make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    """Two apps built from the same settings (two workers) count in the same windows."""
    user = await make_user()
    async with running_app(settings) as (_, first), running_app(settings) as (_, second):
        assert (await chat(first, user.headers)).status_code == 200
        assert (await chat(second, user.headers)).headers["RateLimit-Remaining"] == "1"
        assert (await chat(first, user.headers)).headers["RateLimit-Remaining"] == "0"
        assert_refused(await chat(second, user.headers))
        assert_refused(await chat(first, user.headers))
        # Tokens too: a turn on one spends the window on the other.
        spender = await make_user()
        usage = {"prompt_tokens": 900, "completion_tokens": 200, "total_tokens": 1100}
        fake.enqueue(FakeReply(content="big", usage=usage))
        assert (await chat(first, spender.headers)).status_code == 200
        refused = await chat(second, spender.headers)
        assert_refused(refused)
        assert "tokens" in refused.json()["error"]["message"]

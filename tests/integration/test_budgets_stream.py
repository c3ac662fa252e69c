"""A streamed turn whose client goes away mid-answer: the close (as `cancelled`) settles
its reservation to the usage so far, through a real uvicorn (ASGITransport cannot
disconnect)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from accounting import assert_invariants
from budget_support import PRICES, events_of, make_admin, my_usage, open_reservations, set_budget
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import read_events

from chatter.settings import Settings
from chatter.storage.models import WorkflowExecution
from conftest import UserFactory, live_server, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

LONG_TEXT = " ".join(f"word{n}" for n in range(80))


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url,
        fake_openai,
        prices=PRICES,
        llm={"sse_ping_s": 0.2, "max_retries": 0},
        budgets={"sweep_interval_s": 3600},
    )


@pytest.fixture(scope="module")
async def base_url(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


async def wait_finished(engine: AsyncEngine, execution_id: str) -> WorkflowExecution:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(WorkflowExecution).where(WorkflowExecution.id == execution_id)
                )
            ).one()
        if row.status != "running":
            return row  # type: ignore[return-value]
        await asyncio.sleep(0.05)
    raise AssertionError("execution stayed running")


async def test_client_disconnect_settles_the_reservation(
    app: FastAPI,
    client: httpx.AsyncClient,
    base_url: str,
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    admin = await make_admin(app, client)
    alice = await make_user()
    await set_budget(client, admin, alice.id, daily_tokens=100_000, alert_thresholds=[0.5])
    fake.default_reply = FakeReply(content=LONG_TEXT, chunk_delay_s=0.05)
    execution_id, deltas = "", 0
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream(
            "POST",
            "/api/v1/chat/stream",
            json={"message": "long please", "max_tokens": 500},
            headers=alice.headers,
        ) as response,
    ):
        assert response.status_code == 200
        async for event in read_events(response):
            if event.event == "start":
                execution_id = event.data["execution_id"]
                held = await my_usage(client, alice.headers)
                assert held["reservations"]["count"] == 1
                assert held["reservations"]["tokens"] > 500
            if event.event == "delta":
                deltas += 1
            if deltas >= 5:
                break  # leaving the block closes the connection mid-stream
    execution = await wait_finished(engine, execution_id)
    assert execution.status == "cancelled"
    assert await open_reservations(engine, alice.id) == 0
    usage = await my_usage(client, alice.headers)
    # Settled to what the cancelled turn used (estimated: the stream was cut).
    assert usage["day"]["spent_tokens"] == execution.total_tokens > 0
    assert usage["day"]["spent_tokens"] < 500
    assert usage["reservations"]["count"] == 0
    assert not await events_of(engine, alice.id, "budget_threshold_reached")
    await assert_invariants(engine)

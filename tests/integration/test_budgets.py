"""Spend budgets against the local fake OpenAI server (known prices): admission reserves
atomically, so concurrent turns cannot overshoot; the close settles; failures release;
expired reservations are swept; thresholds are announced once per period."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from budget_support import (
    PRICES,
    TURN_COST,
    TURN_TOKENS,
    container_of,
    events_of,
    make_admin,
    my_usage,
    open_reservations,
    set_budget,
)
from fastapi import FastAPI
from metrics_support import scrape, value
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.clock import utcnow
from chatter.services.chat import ChatRequest
from chatter.settings import Settings
from chatter.storage.budget_tables import BudgetReservation
from chatter.storage.models import Message, User, WorkflowExecution
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

RESERVE_OUTPUT = 50
# "Hi" as a new conversation's only message: 3 framing + "user" + "Hi" + 3 priming.
HI_PROMPT = 8
HI_RESERVATION = HI_PROMPT + RESERVE_OUTPUT


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url,
        fake_openai,
        prices=PRICES,
        # The sweep runs when a test calls it.
        budgets={"default_reserve_output_tokens": RESERVE_OUTPUT, "sweep_interval_s": 3600},
    )


@pytest.fixture(scope="module")
async def admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    return await make_admin(app, client)


async def chat(client: httpx.AsyncClient, actor: Actor, **body: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/chat", json={"message": "Hi", **body}, headers=actor.headers, timeout=30
    )


async def summary_today(client: httpx.AsyncClient, actor: Actor) -> dict[str, Any]:
    start = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    response = await client.get(
        "/api/v1/analytics/summary", params={"start": start.isoformat()}, headers=actor.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_concurrent_turns_cannot_overshoot(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    """20 turns at once against a budget with room for 5 reservations: admissions take
    the user's budget row one at a time, so at most 5 are admitted while they are all in
    flight; the refused ones are 402 and never reach the model."""
    alice = await make_user()
    limit = 5 * HI_RESERVATION
    # 10 % of 290 is reached by the second close: announced once, however many race.
    await set_budget(client, admin, alice.id, daily_tokens=limit, alert_thresholds=[0.1])
    # Slow answers: every admission happens while the admitted turns are still running.
    fake.default_reply = FakeReply(content="Slowly.", delay_s=0.5)
    before = await scrape(client, admin)
    responses = await asyncio.gather(*(chat(client, alice) for _ in range(20)))
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    assert len(admitted) + len(refused) == 20, [r.text for r in responses]
    usage = await my_usage(client, alice.headers)
    spent = usage["day"]["spent_tokens"]
    reserved_at_admission = len(admitted) * HI_RESERVATION
    print(
        f"\nbudget {limit} tokens; admitted {len(admitted)} turns reserving "
        f"{reserved_at_admission} tokens; spent {spent} tokens; refused {len(refused)}"
    )
    assert len(admitted) == 5
    assert spent <= limit
    assert spent == len(admitted) * TURN_TOKENS
    assert len(fake.requests) == len(admitted)  # no model call for a refused turn
    for response in refused:
        error = response.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert error["details"]["period"] == "day"
        assert error["details"]["kind"] == "tokens"
    assert usage["reservations"] == {"count": 0, "tokens": 0, "cost": "0"}
    assert len(await events_of(engine, alice.id, "budget_exceeded")) == len(refused)
    assert len(await events_of(engine, alice.id, "budget_threshold_reached")) == 1
    after = await scrape(client, admin)
    name, labels = "chatter_security_events_total", {"type": "budget_exceeded"}
    assert value(after, name, **labels) - value(before, name, **labels) == len(refused)
    await assert_invariants(engine)


async def test_closes_racing_admissions_never_let_spend_pass_the_limit(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    """Quick answers: turns close while others are admitted. Each reserves exactly what it
    uses (8 prompt + max_tokens 10 = the fake's 18), so an admission that saw a close's
    reservation gone without its usage in the rollups would admit one turn too many."""
    alice = await make_user()
    limit = 10 * TURN_TOKENS
    await set_budget(client, admin, alice.id, daily_tokens=limit)
    responses = await asyncio.gather(*(chat(client, alice, max_tokens=10) for _ in range(40)))
    admitted = [r for r in responses if r.status_code == 200]
    assert all(r.status_code in (200, 402) for r in responses), [r.text for r in responses]
    spent = (await my_usage(client, alice.headers))["day"]["spent_tokens"]
    print(f"\nbudget {limit} tokens; admitted {len(admitted)} of 40; spent {spent} tokens")
    assert spent == len(admitted) * TURN_TOKENS <= limit
    assert len(admitted) == 10
    assert len(fake.requests) == len(admitted)
    await assert_invariants(engine)


async def test_cost_budget_and_the_analytics_agree(
    client: httpx.AsyncClient, admin: dict[str, str], make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    alice = await make_user()
    # Each reservation: 8 input tokens at 0.001 + 20 output tokens at 0.002 = 0.048.
    await set_budget(client, admin, alice.id, daily_cost="0.1", monthly_tokens=10_000)
    assert (await chat(client, alice, max_tokens=20)).status_code == 200
    assert (await chat(client, alice, max_tokens=20)).status_code == 200
    # 0.05 spent + 0.048 fits 0.1; a third would need 0.098 + 0.048.
    third = await chat(client, alice, max_tokens=20)
    assert third.status_code == 200, third.text
    refused = await chat(client, alice, max_tokens=20)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["details"]["kind"] == "cost"
    usage = await my_usage(client, alice.headers)
    summary = await summary_today(client, alice)
    assert Decimal(usage["day"]["spent_cost"]) == 3 * Decimal(TURN_COST)
    assert Decimal(usage["day"]["spent_cost"]) == Decimal(summary["cost"])
    assert usage["day"]["spent_tokens"] == summary["total_tokens"] == 3 * TURN_TOKENS
    assert usage["month"]["spent_tokens"] == summary["total_tokens"]
    assert usage["month"]["remaining_tokens"] == 10_000 - 3 * TURN_TOKENS
    assert Decimal(usage["day"]["remaining_cost"]) == Decimal("0.1") - 3 * Decimal(TURN_COST)


async def test_a_refused_turn_writes_only_its_event(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    alice = await make_user()
    first = await chat(client, alice)
    conversation_id = first.json()["conversation"]["id"]
    await set_budget(client, admin, alice.id, daily_tokens=TURN_TOKENS + 10)
    requests = len(fake.requests)
    refused = await chat(client, alice, conversation_id=conversation_id)
    assert refused.status_code == 402
    assert len(fake.requests) == requests
    async with engine.connect() as connection:
        messages = await connection.scalar(
            select(func.count()).where(Message.conversation_id == conversation_id)
        )
        executions = await connection.scalar(
            select(func.count()).where(WorkflowExecution.user_id == alice.id)
        )
    assert (messages, executions) == (2, 1)
    (event,) = await events_of(engine, alice.id, "budget_exceeded")
    assert event.category == "security"
    assert event.data["limit"] == str(TURN_TOKENS + 10)
    assert event.data["spent"] == str(TURN_TOKENS)
    # Streaming is refused the same way, before the stream starts.
    streamed = await client.post(
        "/api/v1/chat/stream", json={"message": "Hi"}, headers=alice.headers
    )
    assert streamed.status_code == 402
    assert streamed.json()["error"]["code"] == "budget_exceeded"
    # Unlimited again: the turn runs.
    await set_budget(client, admin, alice.id)
    async with engine.connect() as connection:
        assert not await connection.scalar(select(User.has_budget).where(User.id == alice.id))
    assert (await chat(client, alice, conversation_id=conversation_id)).status_code == 200


async def test_reservation_held_during_the_turn_and_settled(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    alice = await make_user()
    await set_budget(client, admin, alice.id, monthly_tokens=100_000)
    fake.default_reply = FakeReply(content="Slowly.", delay_s=0.5)
    turn = asyncio.create_task(chat(client, alice, max_tokens=30))
    deadline = time.monotonic() + 10
    while not fake.requests:  # the turn is admitted and its model call under way
        assert time.monotonic() < deadline, "the model was never called"
        await asyncio.sleep(0.01)
    during = await my_usage(client, alice.headers)
    assert during["reservations"]["count"] == 1
    assert during["reservations"]["tokens"] == HI_PROMPT + 30
    assert during["month"]["remaining_tokens"] == 100_000 - HI_PROMPT - 30
    assert (await turn).status_code == 200
    after = await my_usage(client, alice.headers)
    assert after["reservations"]["count"] == 0
    assert after["month"]["spent_tokens"] == TURN_TOKENS
    assert await open_reservations(engine, alice.id) == 0


async def test_a_failed_turn_releases_its_reservation(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    alice = await make_user()
    await set_budget(client, admin, alice.id, daily_tokens=HI_RESERVATION)
    fake.enqueue(FakeReply(status=500))
    failed = await chat(client, alice)
    assert failed.status_code == 502, failed.text
    usage = await my_usage(client, alice.headers)
    assert usage["reservations"]["count"] == 0
    assert usage["day"]["spent_tokens"] == (await summary_today(client, alice))["total_tokens"]
    # The whole budget is free again: a turn reserving all of it is admitted.
    assert (await chat(client, alice)).status_code == 200
    await assert_invariants(engine)


async def test_expired_reservations_are_released(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    engine: AsyncEngine,
) -> None:
    """A turn admitted but never run (its process died, or its client left before the
    stream started) holds its reservation until it expires; then the sweep releases it."""
    alice = await make_user()
    await set_budget(client, admin, alice.id, daily_tokens=10 * HI_RESERVATION)
    container = container_of(app)
    async with container.sessions() as session:
        user = await session.get(User, alice.id)
        assert user is not None
        turn = await container.chat.admit(
            session=session,
            user=user,
            request=ChatRequest(message="Hi"),
            correlation_id="budget-expiry",
        )
    assert turn.reservation is not None
    assert await container.budgets.sweep_once() == 0  # not expired yet
    assert await open_reservations(engine, alice.id) == 1
    async with engine.begin() as connection:
        await connection.execute(
            update(BudgetReservation)
            .where(BudgetReservation.id == turn.reservation.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await container.budgets.sweep_once() == 1
    assert await open_reservations(engine, alice.id) == 0


async def test_a_crashed_turns_reservation_is_released_after_recovery(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    engine: AsyncEngine,
) -> None:
    """A turn whose process died mid-run: its execution stays `running` (so its expired
    reservation is kept: a live turn may take long) until recovery closes it; the next
    sweep then releases the reservation."""
    alice = await make_user()
    await set_budget(client, admin, alice.id, daily_tokens=10 * HI_RESERVATION)
    container = container_of(app)
    async with container.sessions() as session:
        user = await session.get(User, alice.id)
        assert user is not None
        turn = await container.chat.admit(
            session=session, user=user, request=ChatRequest(message="Hi"), correlation_id="crash"
        )
    assert turn.reservation is not None
    async with container.sessions() as session:
        # As a process that died after opening the turn left it: running, no live owner.
        session.add(
            WorkflowExecution(
                id=turn.reservation.execution_id,
                user_id=alice.id,
                workflow_name="chat",
                status="running",
                correlation_id="crash",
                owner_id=None,
            )
        )
        await session.execute(
            update(BudgetReservation)
            .where(BudgetReservation.id == turn.reservation.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert await container.budgets.sweep_once() == 0  # still running: kept
    assert await container.recovery.recover() == 1
    assert await container.budgets.sweep_once() == 1
    assert await open_reservations(engine, alice.id) == 0
    await assert_invariants(engine)


async def test_thresholds_are_announced_once_per_period(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_user: UserFactory,
    engine: AsyncEngine,
) -> None:
    alice = await make_user()
    await set_budget(client, admin, alice.id, daily_tokens=1000, alert_thresholds=[0.01, 0.05])
    # 18, 36, 54 tokens of 1000: 0.01 is reached by the first turn, 0.05 by the third.
    for _ in range(2):
        assert (await chat(client, alice)).status_code == 200
    reached = await events_of(engine, alice.id, "budget_threshold_reached")
    assert [event.data["threshold"] for event in reached] == [0.01]
    assert (await chat(client, alice)).status_code == 200
    assert (await chat(client, alice)).status_code == 200
    reached = await events_of(engine, alice.id, "budget_threshold_reached")
    assert sorted(event.data["threshold"] for event in reached) == [0.01, 0.05]
    (last,) = [event for event in reached if event.data["threshold"] == 0.05]
    assert last.category == "analytics"
    assert last.data["period"] == "day"
    assert last.data["spent_tokens"] == 3 * TURN_TOKENS
    assert last.data["limit_tokens"] == 1000

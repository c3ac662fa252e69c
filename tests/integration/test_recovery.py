"""Recovery closes the executions of workers that stopped heartbeating - at startup and
periodically, by any worker - applying their usage once, and spares those of live workers."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from accounting import assert_events_recorded, assert_invariants, assert_rollups_match
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatter.container import Container
from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.domain.usage import TokenCounts, Usage
from chatter.services.recovery import ExecutionRecovery
from chatter.settings import ExecutionSettings, Settings
from chatter.storage import llm_calls, outbox
from chatter.storage.db import create_session_factory
from chatter.storage.models import Event, Message, Worker, WorkflowExecution
from chatter.workflows.events import ModelCallRecord
from conftest import Actor, UserFactory, make_settings, running_app

SHORT = {"heartbeat_s": 0.1, "lease_s": 0.6, "recovery_interval_s": 0.1}


def a_call() -> ModelCallRecord:
    return ModelCallRecord(
        call_id=new_id(),
        node="model",
        provider="openai",
        model="gpt-4o-mini",
        usage=Usage(TokenCounts(100, 20, cached_tokens=30), cost=Decimal("0.0000345")),
        price_source="override",
        latency_ms=50,
        time_to_first_token_ms=None,
        finish_reason="stop",
        status="succeeded",
    )


async def new_conversation(client: httpx.AsyncClient, user: Actor) -> str:
    response = await client.post("/api/v1/conversations", json={}, headers=user.headers)
    conversation_id: str = response.json()["id"]
    return conversation_id


async def seed_execution(
    sessions: async_sessionmaker[AsyncSession],
    user: Actor,
    conversation_id: str,
    owner_id: str | None,
) -> str:
    """A running execution with one recorded call, as a live turn leaves it mid-way."""
    async with sessions() as session:
        execution = WorkflowExecution(
            user_id=user.id,
            conversation_id=conversation_id,
            workflow_name="chat",
            status="running",
            correlation_id=f"turn-{new_id()}",
            owner_id=owner_id,
        )
        session.add(execution)
        await session.flush()
        await outbox.write_events(
            session, await llm_calls.record_calls(session, execution, [a_call()])
        )
        await session.commit()
        return execution.id


async def seed_worker(
    sessions: async_sessionmaker[AsyncSession], heartbeat_at: datetime | None = None
) -> str:
    worker_id = new_id()
    at = heartbeat_at or utcnow()
    async with sessions() as session:
        session.add(Worker(id=worker_id, hostname="elsewhere", pid=1, heartbeat_at=at))
        await session.commit()
    return worker_id


async def statuses(engine: AsyncEngine, ids: list[str]) -> dict[str, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(WorkflowExecution.id, WorkflowExecution.status).where(
                WorkflowExecution.id.in_(ids)
            )
        )
        return {execution_id: status for execution_id, status in rows}


async def worker_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.scalars(select(Worker.id)))


async def wait_for_status(engine: AsyncEngine, ids: list[str], timeout_s: float) -> float:
    """Seconds until every one of `ids` is closed."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(status != "running" for status in (await statuses(engine, ids)).values()):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"still running after {timeout_s} s: {await statuses(engine, ids)}")


async def test_interrupted_execution_is_closed_once(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, engine: AsyncEngine
) -> None:
    user = await make_user()
    conversation_id = await new_conversation(client, user)
    # No owner: a row from before executions had owners.
    execution_id = await seed_execution(create_session_factory(engine), user, conversation_id, None)

    for _ in range(2):  # a second start must not apply the usage again
        async with running_app(settings):
            pass

    async with engine.connect() as connection:
        closed = (
            await connection.execute(
                select(WorkflowExecution).where(WorkflowExecution.id == execution_id)
            )
        ).one()
        messages = (
            await connection.execute(
                select(Message).where(Message.workflow_execution_id == execution_id)
            )
        ).all()
    assert closed.status == "failed"
    assert "interrupted" in closed.error
    assert closed.total_tokens == 120
    (message,) = messages
    assert message.status == "error"
    assert message.total_tokens == 120
    assert message.cost == Decimal("0.0000345")
    refreshed = (
        await client.get(f"/api/v1/conversations/{conversation_id}", headers=user.headers)
    ).json()
    assert refreshed["total_tokens"] == 120
    assert refreshed["message_count"] == 1
    await assert_invariants(engine)


async def test_startup_spares_live_workers_and_recovers_the_dead_ones(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, engine: AsyncEngine
) -> None:
    user = await make_user()
    conversation_id = await new_conversation(client, user)
    sessions = create_session_factory(engine)
    lease = settings.executions.lease_s
    live = await seed_worker(sessions)
    stale = await seed_worker(sessions, utcnow() - timedelta(seconds=2 * lease))
    running = await seed_execution(sessions, user, conversation_id, live)
    orphans = [
        await seed_execution(sessions, user, conversation_id, stale),
        await seed_execution(sessions, user, conversation_id, new_id()),  # no worker row
        await seed_execution(sessions, user, conversation_id, None),  # from before owners
    ]

    async with running_app(settings) as (app, _):
        me = app.state.container.worker_id
        assert me in await worker_ids(engine)

    assert await statuses(engine, [running]) == {running: "running"}
    assert set((await statuses(engine, orphans)).values()) == {"failed"}
    remaining = await worker_ids(engine)
    assert stale not in remaining  # its executions are recovered: its row is gone
    assert live in remaining
    assert me not in remaining  # a clean shutdown deletes its own row

    # The live worker dies too: its execution is recovered once its lease has run out.
    async with sessions() as session:
        await session.execute(
            update(Worker)
            .where(Worker.id == live)
            .values(heartbeat_at=utcnow() - timedelta(seconds=2 * lease))
        )
        await session.commit()
    async with running_app(settings):
        pass
    assert await statuses(engine, [running]) == {running: "failed"}
    assert live not in await worker_ids(engine)
    await assert_invariants(engine)
    await assert_events_recorded(engine)
    await assert_rollups_match(engine)


async def test_a_running_worker_recovers_periodically_within_the_lease(
    client: httpx.AsyncClient, make_user: UserFactory, database_url: str, engine: AsyncEngine
) -> None:
    user = await make_user()
    conversation_id = await new_conversation(client, user)
    sessions = create_session_factory(engine)
    async with running_app(make_settings(database_url, executions=SHORT)) as (app, _):
        survivor: Container = app.state.container
        # A worker that was alive when the survivor started, then died without a word.
        other = await seed_worker(sessions)
        execution_id = await seed_execution(sessions, user, conversation_id, other)
        await asyncio.sleep(SHORT["lease_s"] / 3)
        assert await statuses(engine, [execution_id]) == {execution_id: "running"}
        waited = await wait_for_status(engine, [execution_id], timeout_s=5)
        assert waited < SHORT["lease_s"] + 3 * SHORT["recovery_interval_s"] + 0.5
        # The survivor's own heartbeat kept it alive meanwhile.
        assert survivor.worker_id in await worker_ids(engine)
        assert other not in await worker_ids(engine)
        async with engine.connect() as connection:
            recovered = await connection.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.execution_id == execution_id, Event.type == "workflow_failed")
            )
            data = await connection.scalar(
                select(Event.data).where(
                    Event.execution_id == execution_id, Event.type == "workflow_failed"
                )
            )
        assert recovered == 1
        assert data is not None
        assert data["error"]["code"] == "execution_interrupted"
        metrics = survivor.telemetry.metrics.exposition(outbox_backlog=0).decode()
        assert "chatter_executions_recovered_total 1.0" in metrics
    await assert_invariants(engine)


async def test_two_workers_racing_to_recover_count_each_execution_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    database_url: str,
    engine: AsyncEngine,
) -> None:
    user = await make_user()
    conversations = [await new_conversation(client, user) for _ in range(3)]
    sessions = create_session_factory(engine)
    dead = await seed_worker(sessions, utcnow() - timedelta(hours=1))
    orphans = [await seed_execution(sessions, user, conversations[i % 3], dead) for i in range(12)]
    container: Container = app.state.container
    settings = ExecutionSettings()
    # Two workers: separate connections (the app's engine and the test's).
    first = ExecutionRecovery(container.sessions, container.publisher, settings, new_id())
    second = ExecutionRecovery(sessions, container.publisher, settings, new_id())

    counts = await asyncio.gather(first.recover(), second.recover(), first.recover())

    assert sum(counts) == len(orphans)
    assert set((await statuses(engine, orphans)).values()) == {"failed"}
    async with engine.connect() as connection:
        terminal = (
            await connection.execute(
                select(Event.execution_id, func.count())
                .where(Event.execution_id.in_(orphans), Event.type == "workflow_failed")
                .group_by(Event.execution_id)
            )
        ).all()
        closing_messages = await connection.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.workflow_execution_id.in_(orphans))
        )
    assert sorted(terminal) == sorted((execution_id, 1) for execution_id in orphans)
    assert closing_messages == len(orphans)
    for conversation_id in conversations:
        body = (
            await client.get(f"/api/v1/conversations/{conversation_id}", headers=user.headers)
        ).json()
        assert body["total_tokens"] == 120 * 4  # four executions each, counted once
    await assert_invariants(engine)
    await assert_events_recorded(engine)
    await assert_rollups_match(engine)


async def test_a_worker_never_recovers_its_own_turns_even_with_a_late_heartbeat(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    """A stalled loop or a suspended host makes a worker's own heartbeat look stale: its
    recovery pass must not close the turns it is running (others may, after the lease)."""
    user = await make_user()
    conversation_id = await new_conversation(client, user)
    sessions = create_session_factory(engine)
    me = await seed_worker(sessions, utcnow() - timedelta(seconds=2 * settings.executions.lease_s))
    mine = await seed_execution(sessions, user, conversation_id, me)
    container: Container = app.state.container
    own_pass = ExecutionRecovery(sessions, container.publisher, settings.executions, me)
    await own_pass.recover()
    assert await statuses(engine, [mine]) == {mine: "running"}
    assert me in await worker_ids(engine)  # nor forgets itself
    other_pass = ExecutionRecovery(sessions, container.publisher, settings.executions, new_id())
    assert await other_pass.recover() >= 1
    assert await statuses(engine, [mine]) == {mine: "failed"}

"""A worker whose heartbeat is late by more than the lease may see another worker recover
the execution it is still running. Its turn then records nothing more (no call row after
the execution's totals were summed, no second close), and its client gets an
`execution_interrupted` error with the stored records - never a 500, never a double count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from accounting import assert_events_recorded, assert_invariants, assert_rollups_match
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import read_events

from chatter.container import Container
from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.services.recovery import ExecutionRecovery
from chatter.storage.db import create_session_factory
from chatter.storage.models import Event, LLMCall, Message, Worker, WorkflowExecution
from conftest import Actor, openai_settings, running_app
from fakes.openai_server import FakeOpenAIServer, FakeReply

# Long: in these tests only the test decides when this worker looks dead.
QUIET = {"heartbeat_s": 100, "lease_s": 200, "recovery_interval_s": 100}
FIRST = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}


@pytest.fixture(scope="module")
async def slow_app(
    database_url: str, fake_openai: FakeOpenAIServer
) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    settings = openai_settings(database_url, fake_openai, executions=QUIET)
    async with running_app(settings) as (app, client):
        yield app.state.container, client


@pytest.fixture(scope="module")
async def user(slow_app: tuple[Container, httpx.AsyncClient]) -> Actor:
    client = slow_app[1]
    credentials = {"email": f"late-{new_id().lower()}@example.com", "password": "p" * 12}
    registered = await client.post("/api/v1/auth/register", json=credentials)
    login = await client.post("/api/v1/auth/login", json=credentials)
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return Actor(registered.json()["id"], credentials["email"], credentials["password"], headers)


async def running_execution(engine: AsyncEngine, owner: str, calls: int = 0) -> str:
    """The execution `owner` is running, once it has `calls` recorded calls."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(WorkflowExecution.id, func.count(LLMCall.id))
                    .outerjoin(LLMCall, LLMCall.execution_id == WorkflowExecution.id)
                    .where(
                        WorkflowExecution.status == "running", WorkflowExecution.owner_id == owner
                    )
                    .group_by(WorkflowExecution.id)
                )
            ).all()
        if rows and rows[0][1] >= calls:
            execution_id: str = rows[0][0]
            return execution_id
        await asyncio.sleep(0.02)
    raise AssertionError("no running execution")


async def recover_as_another_worker(container: Container, engine: AsyncEngine) -> int:
    """This worker's heartbeat is now older than the lease; another worker's pass runs."""
    sessions = create_session_factory(engine)
    async with sessions() as session:
        await session.execute(
            update(Worker)
            .where(Worker.id == container.worker_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=2 * QUIET["lease_s"]))
        )
        await session.commit()
    other = ExecutionRecovery(
        sessions, container.publisher, container.settings.executions, new_id()
    )
    return await other.recover()


async def closing_events(engine: AsyncEngine, execution_id: str) -> list[str]:
    async with engine.connect() as connection:
        types = await connection.scalars(
            select(Event.type).where(
                Event.execution_id == execution_id,
                Event.type.in_(["workflow_completed", "workflow_failed", "workflow_cancelled"]),
            )
        )
        return list(types)


async def test_a_turn_recovered_while_its_model_answers_records_nothing_more(
    slow_app: tuple[Container, httpx.AsyncClient],
    user: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    container, client = slow_app
    fake.enqueue(FakeReply(content="Too late.", delay_s=1.0))
    turn = asyncio.create_task(
        client.post("/api/v1/chat", json={"message": "Hello?"}, headers=user.headers)
    )
    execution_id = await running_execution(engine, container.worker_id)
    assert await recover_as_another_worker(container, engine) == 1

    response = await turn
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "execution_interrupted"
    assert error["details"]["execution_id"] == execution_id

    async with engine.connect() as connection:
        execution = (
            await connection.execute(
                select(WorkflowExecution).where(WorkflowExecution.id == execution_id)
            )
        ).one()
        calls = await connection.scalar(
            select(func.count()).select_from(LLMCall).where(LLMCall.execution_id == execution_id)
        )
        messages = (
            await connection.execute(
                select(Message.role, Message.status).where(
                    Message.conversation_id == execution.conversation_id
                )
            )
        ).all()
    assert execution.status == "failed"
    assert "interrupted" in execution.error
    assert (execution.llm_call_count, calls, execution.total_tokens) == (0, 0, 0)
    assert sorted(messages) == [("assistant", "error"), ("user", "complete")]
    assert await closing_events(engine, execution_id) == ["workflow_failed"]

    # The worker's next heartbeat puts back the row recovery deleted: its next turns are
    # its own again.
    await container.recovery.heartbeat()
    async with engine.connect() as connection:
        assert await connection.scalar(select(Worker.id).where(Worker.id == container.worker_id))
    fake.enqueue(FakeReply(content="Back."))
    again = await client.post("/api/v1/chat", json={"message": "Again"}, headers=user.headers)
    assert again.status_code == 200, again.text
    await assert_invariants(engine)
    await assert_events_recorded(engine)
    await assert_rollups_match(engine)


async def test_a_streamed_tool_turn_recovered_between_calls_counts_the_first_call_once(
    slow_app: tuple[Container, httpx.AsyncClient],
    user: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    container, client = slow_app
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage=FIRST,
        ),
        FakeReply(content="6*7 is 42.", chunk_delay_s=0.2, chunk_size_words=1),
    )

    async def stream() -> list[tuple[str, Any]]:
        body = {"message": "What is 6*7?", "workflow": "chat_with_tools"}
        async with client.stream(
            "POST", "/api/v1/chat/stream", json=body, headers=user.headers
        ) as response:
            assert response.status_code == 200
            return [(event.event, event.data) async for event in read_events(response)]

    turn = asyncio.create_task(stream())
    execution_id = await running_execution(engine, container.worker_id, calls=1)
    assert await recover_as_another_worker(container, engine) == 1

    events = await turn
    names = [name for name, _ in events if name != "comment"]
    assert names[0] == "start"
    assert names[-1] == "error"
    last = events[-1][1]
    assert last["code"] == "execution_interrupted"
    assert last["execution"]["status"] == "failed"
    # The first call only, once: on the execution, on recovery's message, on the conversation.
    assert last["execution"]["total_tokens"] == 60
    assert last["execution"]["llm_call_count"] == 1
    assert last["assistant_message"]["total_tokens"] == 60
    assert last["conversation"]["total_tokens"] == 60
    assert await closing_events(engine, execution_id) == ["workflow_failed"]
    await assert_invariants(engine)
    await assert_events_recorded(engine)
    await assert_rollups_match(engine)

"""Startup closes executions a crashed process left running, applying their usage once."""

from __future__ import annotations

from decimal import Decimal

import httpx
from accounting import assert_invariants
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from chatter.storage.db import create_session_factory
from chatter.storage.models import LLMCall, Message, WorkflowExecution
from conftest import UserFactory, running_app


async def test_interrupted_execution_is_closed_once(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings, engine: AsyncEngine
) -> None:
    user = await make_user()
    conversation = (
        await client.post("/api/v1/conversations", json={}, headers=user.headers)
    ).json()
    sessions = create_session_factory(engine)
    async with sessions() as session:
        execution = WorkflowExecution(
            user_id=user.id,
            conversation_id=conversation["id"],
            workflow_name="chat",
            status="running",
            correlation_id="crashed-turn",
        )
        session.add(execution)
        await session.flush()
        session.add(
            LLMCall(
                execution_id=execution.id,
                node="model",
                provider="openai",
                model="gpt-4o-mini",
                prompt_tokens=100,
                completion_tokens=20,
                total_tokens=120,
                cached_tokens=30,
                cost=Decimal("0.0000345"),
                usage_source="provider",
                latency_ms=50,
                status="succeeded",
                correlation_id="crashed-turn",
            )
        )
        await session.commit()
        execution_id = execution.id

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
        await client.get(f"/api/v1/conversations/{conversation['id']}", headers=user.headers)
    ).json()
    assert refreshed["total_tokens"] == 120
    assert refreshed["message_count"] == 1
    await assert_invariants(engine)

"""Startup closes executions a crashed process left running, applying their usage once."""

from __future__ import annotations

from decimal import Decimal

import httpx
from accounting import assert_invariants
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.ids import new_id
from chatter.domain.usage import TokenCounts, Usage
from chatter.settings import Settings
from chatter.storage import llm_calls, outbox
from chatter.storage.db import create_session_factory
from chatter.storage.models import Message, WorkflowExecution
from chatter.workflows.events import ModelCallRecord
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
        # The call as a live turn records it (row and event) before the process dies.
        call = ModelCallRecord(
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
        await outbox.write_events(session, await llm_calls.record_calls(session, execution, [call]))
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

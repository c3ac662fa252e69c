"""SQL checks of the accounting invariants (docs/accounting.md), used by several test modules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from chatter.storage import rollup_rebuild
from chatter.storage.models import Conversation, Event, LLMCall, Message, WorkflowExecution

TERMINAL = {
    "completed": "workflow_completed",
    "failed": "workflow_failed",
    "cancelled": "workflow_cancelled",
}

USAGE_SOURCES = ("provider", "estimated")
TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
)


async def assert_invariants(engine: AsyncEngine) -> None:
    """Conversation = sum of its messages; execution = sum of its calls; sequences 1..n;
    nothing running."""
    async with engine.connect() as connection:
        conversations = (await connection.execute(select(Conversation))).all()
        for conv in conversations:
            sums = (
                await connection.execute(
                    select(
                        func.count(Message.id),
                        *[func.coalesce(func.sum(getattr(Message, f)), 0) for f in TOKEN_FIELDS],
                        func.sum(Message.cost),
                        func.min(Message.sequence),
                        func.max(Message.sequence),
                        func.count(func.distinct(Message.sequence)),
                    ).where(Message.conversation_id == conv.id)
                )
            ).one()
            count, *tokens, cost, low, high, distinct = sums
            assert conv.message_count == count, conv.id
            for name, value in zip(TOKEN_FIELDS, tokens, strict=True):
                assert getattr(conv, name) == value, (conv.id, name)
            assert conv.total_cost == (cost or Decimal(0)), conv.id
            if count:
                assert (low, high, distinct) == (1, count, count), conv.id
        executions = (await connection.execute(select(WorkflowExecution))).all()
        for execution in executions:
            assert execution.status != "running", execution.id
            sums = (
                await connection.execute(
                    select(
                        func.count(LLMCall.id),
                        *[func.coalesce(func.sum(getattr(LLMCall, f)), 0) for f in TOKEN_FIELDS],
                        func.sum(LLMCall.cost),
                    ).where(LLMCall.execution_id == execution.id)
                )
            ).one()
            count, *tokens, cost = sums
            assert execution.llm_call_count == count
            for name, value in zip(TOKEN_FIELDS, tokens, strict=True):
                assert getattr(execution, name) == value, (execution.id, name)
            assert execution.total_cost == (cost or Decimal(0))
    await assert_events_recorded(engine)
    await assert_rollups_match(engine)


async def assert_events_recorded(engine: AsyncEngine) -> None:
    """Invariant 6: every committed change that has an event has exactly one outbox row."""
    async with engine.connect() as connection:
        events = (await connection.execute(select(Event))).all()
        calls = (await connection.execute(select(LLMCall.id, LLMCall.execution_id))).all()
        messages = (await connection.execute(select(Message.id, Message.correlation_id))).all()
        executions = (await connection.execute(select(WorkflowExecution))).all()
    ids = [event.id for event in events]
    assert len(ids) == len(set(ids))
    call_events = [e.data["call_id"] for e in events if e.type == "llm_call_completed"]
    assert sorted(call_events) == sorted(call.id for call in calls)
    message_events = [e.data["message_id"] for e in events if e.type == "message_created"]
    turn_messages = [m.id for m in messages if m.correlation_id is not None]
    assert set(turn_messages) <= set(message_events)
    assert len(message_events) == len(set(message_events))
    by_execution: dict[str | None, list[Any]] = {}
    for event in events:
        by_execution.setdefault(event.execution_id, []).append(event)
    for execution in executions:
        mine = by_execution.get(execution.id, [])
        assert all(e.correlation_id == execution.correlation_id for e in mine), execution.id
        started = [e for e in mine if e.type == "workflow_started"]
        finished = [e for e in mine if e.type in TERMINAL.values()]
        assert len(started) <= 1, execution.id
        # Exactly one terminal event, and the one that names the execution's status.
        assert [e.type for e in finished] == [TERMINAL.get(execution.status)], (
            execution.id,
            execution.status,
            [e.type for e in finished],
        )
        assert not started or started[0].id < finished[0].id


async def assert_assistant_usage(engine: AsyncEngine) -> None:
    """Invariant 3: every assistant message a turn wrote carries usage, reported by the
    provider or estimated, never none."""
    async with engine.connect() as connection:
        missing = (
            await connection.execute(
                select(Message.id, Message.status, Message.usage_source).where(
                    Message.role == "assistant",
                    Message.workflow_execution_id.is_not(None),
                    Message.usage_source.is_(None) | Message.usage_source.not_in(USAGE_SOURCES),
                )
            )
        ).all()
    assert missing == [], missing[:10]


async def assert_outbox_drained(engine: AsyncEngine) -> None:
    """Every outbox row was published (marked by the publisher or the relay)."""
    async with engine.connect() as connection:
        unpublished = await connection.scalar(
            select(func.count(Event.id)).where(Event.published_at.is_(None))
        )
    assert unpublished == 0


async def assert_rollups_match(engine: AsyncEngine) -> None:
    """Invariant 6 (second half): the analytics rollups equal the sums over the LLM-call
    and execution rows they were made of, in every bucket."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    async with AsyncSession(engine) as session:
        differences = await rollup_rebuild.compare(
            session, since=epoch, minutes_from=epoch, until=datetime(9999, 1, 1, tzinfo=UTC)
        )
    assert differences == []

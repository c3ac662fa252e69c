"""SQL checks of the accounting invariants (docs/accounting.md), used by several test modules."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.storage.models import Conversation, LLMCall, Message, WorkflowExecution

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

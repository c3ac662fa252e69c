"""The SQL of a chat turn: open, record each call, close. Callers own the transaction.

Aggregates only ever move by SQL increments (`SET x = x + :n`), and appending messages
allocates their sequences in the same UPDATE ... RETURNING, which takes the conversation's
row lock: sequences are unique and gap-free under any number of concurrent turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import ExecutionStatus, MessageRole, MessageStatus, UsageSource
from chatter.domain.usage import TokenCounts, Usage, total_usage
from chatter.errors import NotFound
from chatter.storage.models import (
    Base,
    Conversation,
    LLMCall,
    Message,
    ToolInvocation,
    WorkflowExecution,
)


class CallUsage(Protocol):
    """What storage needs of a model call record (workflows.events.ModelCallRecord)."""

    @property
    def call_id(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def usage(self) -> Usage: ...

    @property
    def price_source(self) -> str: ...

    @property
    def latency_ms(self) -> int: ...

    @property
    def time_to_first_token_ms(self) -> int | None: ...

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str | None: ...


class ToolUse(Protocol):
    """What storage needs of a tool call record (workflows.events.ToolCallRecord)."""

    @property
    def tool_call_id(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def arguments(self) -> dict[str, Any]: ...

    @property
    def result(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def latency_ms(self) -> int: ...


def fit(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """Make text from models and users storable alike on SQLite and PostgreSQL: drop NUL
    characters (PostgreSQL refuses them) and clip strings to their column's length."""
    columns = model.__table__.columns
    fitted = {}
    for name, value in values.items():
        if isinstance(value, str):
            value = value.replace("\x00", "")
            length = getattr(columns[name].type, "length", None) if name in columns else None
            if length is not None:
                value = value[:length]
        fitted[name] = value
    return fitted


@dataclass
class MessageDraft:
    role: MessageRole
    content: str
    status: MessageStatus = MessageStatus.COMPLETE
    usage: Usage | None = None  # None: a message that carries no usage (user, tool)
    fields: dict[str, Any] = field(default_factory=dict)


async def append_messages(
    session: AsyncSession, conversation_id: str, drafts: Sequence[MessageDraft]
) -> list[Message]:
    """Append messages and grow the conversation's aggregates by their usage, atomically."""
    usage = total_usage([draft.usage for draft in drafts if draft.usage is not None])
    now = utcnow()
    last_sequence = (
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(
                message_count=Conversation.message_count + len(drafts),
                prompt_tokens=Conversation.prompt_tokens + usage.prompt_tokens,
                completion_tokens=Conversation.completion_tokens + usage.completion_tokens,
                total_tokens=Conversation.total_tokens + usage.total_tokens,
                cached_tokens=Conversation.cached_tokens + usage.cached_tokens,
                reasoning_tokens=Conversation.reasoning_tokens + usage.reasoning_tokens,
                total_cost=Conversation.total_cost + usage.cost,
                last_message_at=now,
                updated_at=now,
            )
            .returning(Conversation.message_count)
        )
    ).scalar_one_or_none()
    if last_sequence is None:
        raise NotFound("Conversation not found.", details={"conversation_id": conversation_id})
    first = last_sequence - len(drafts) + 1
    messages = [
        _message(conversation_id, first + offset, draft, now) for offset, draft in enumerate(drafts)
    ]
    session.add_all(messages)
    await session.flush()
    return messages


def _message(conversation_id: str, sequence: int, draft: MessageDraft, now: datetime) -> Message:
    values = {
        "conversation_id": conversation_id,
        "sequence": sequence,
        "role": draft.role.value,
        "content": draft.content,
        "status": draft.status.value,
        "created_at": now,
        **draft.fields,
    }
    if draft.usage is not None:
        values.update(usage_columns(draft.usage))
    return Message(**fit(Message, values))


def usage_columns(usage: Usage) -> dict[str, Any]:
    """A Usage as the columns of a message or LLM call row."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost": usage.cost,
        "cost_known": usage.cost_known,
        "currency": usage.currency,
        "usage_source": usage.source.value,
    }


def llm_call_row(execution_id: str, correlation_id: str, record: CallUsage) -> LLMCall:
    values = {
        "id": record.call_id,
        "execution_id": execution_id,
        "node": record.node,
        "provider": record.provider,
        "model": record.model,
        **usage_columns(record.usage),
        "price_source": record.price_source,
        "latency_ms": record.latency_ms,
        "time_to_first_token_ms": record.time_to_first_token_ms,
        "finish_reason": record.finish_reason,
        "status": record.status,
        "error": record.error,
        "correlation_id": correlation_id,
    }
    return LLMCall(**fit(LLMCall, values))


def tool_call_row(execution_id: str, correlation_id: str, record: ToolUse) -> ToolInvocation:
    values = {
        "execution_id": execution_id,
        "node": record.node,
        "tool_call_id": record.tool_call_id,
        "name": record.name,
        "arguments": record.arguments,
        "result": record.result,
        "status": record.status,
        "latency_ms": record.latency_ms,
        "correlation_id": correlation_id,
    }
    return ToolInvocation(**fit(ToolInvocation, values))


async def finish_execution(
    session: AsyncSession,
    execution: WorkflowExecution,
    status: ExecutionStatus,
    error: str | None,
) -> bool:
    """Close a running execution with totals summed from its LLM call rows, in SQL.

    Guarded on `status = 'running'`, so closing twice (a crash recovery racing a late
    close) changes nothing the second time. Returns whether this call closed it.
    """
    count, usage = await recorded_usage(session, execution.id)
    now = utcnow()
    result = await session.execute(
        update(WorkflowExecution)
        .where(
            WorkflowExecution.id == execution.id,
            WorkflowExecution.status == ExecutionStatus.RUNNING.value,
        )
        .values(
            status=status.value,
            finished_at=now,
            duration_ms=int((now - execution.started_at).total_seconds() * 1000),
            llm_call_count=count,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_cost=usage.cost,
            **fit(WorkflowExecution, {"error": error}),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def recorded_usage(session: AsyncSession, execution_id: str) -> tuple[int, Usage]:
    """How many LLM call rows an execution has, and the sum of their usage, in SQL."""
    row = (
        await session.execute(
            select(
                func.count(LLMCall.id),
                func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
                func.coalesce(func.sum(LLMCall.completion_tokens), 0),
                func.coalesce(func.sum(LLMCall.cached_tokens), 0),
                func.coalesce(func.sum(LLMCall.reasoning_tokens), 0),
                func.sum(LLMCall.cost),
                func.count(LLMCall.id).filter(LLMCall.usage_source == "estimated"),
                func.count(LLMCall.id).filter(LLMCall.cost_known.is_(False)),
            ).where(LLMCall.execution_id == execution_id)
        )
    ).one()
    count, prompt, completion, cached, reasoning, cost, estimated, unknown = row
    usage = Usage(
        tokens=TokenCounts(prompt, completion, cached, reasoning),
        cost=cost if cost is not None else Decimal(0),
        cost_known=unknown == 0,
        source=UsageSource.ESTIMATED if estimated else UsageSource.PROVIDER,
    )
    return count, usage

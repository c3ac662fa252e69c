"""Everything recorded under one correlation id: executions, their model and tool calls,
the messages and the events. Scoped to one user's rows, or everyone's (`user_id=None`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.events import UnifiedEvent
from chatter.storage.models import (
    Conversation,
    Event,
    LLMCall,
    Message,
    ToolInvocation,
    WorkflowExecution,
)
from chatter.storage.outbox import to_unified


@dataclass(frozen=True)
class TraceRows:
    executions: list[WorkflowExecution]
    llm_calls: list[LLMCall]
    tool_calls: list[ToolInvocation]
    messages: list[Message]
    events: list[UnifiedEvent]

    @property
    def empty(self) -> bool:
        return not (
            self.executions or self.llm_calls or self.tool_calls or self.messages or self.events
        )


async def trace_rows(
    session: AsyncSession, correlation_id: str, *, user_id: str | None, limit: int
) -> TraceRows:
    """At most `limit` rows of each kind, oldest first (a client may reuse an id)."""
    executions_query = select(WorkflowExecution).where(
        WorkflowExecution.correlation_id == correlation_id
    )
    messages_query = select(Message).where(Message.correlation_id == correlation_id)
    events_query = select(Event).where(Event.correlation_id == correlation_id)
    if user_id is not None:
        executions_query = executions_query.where(WorkflowExecution.user_id == user_id)
        messages_query = messages_query.join(
            Conversation, Conversation.id == Message.conversation_id
        ).where(Conversation.user_id == user_id)
        events_query = events_query.where(Event.user_id == user_id)
    executions = list(
        await session.scalars(
            executions_query.order_by(WorkflowExecution.started_at, WorkflowExecution.id).limit(
                limit
            )
        )
    )
    ids = [execution.id for execution in executions]
    calls = await session.scalars(
        select(LLMCall)
        .where(LLMCall.execution_id.in_(ids))
        .order_by(LLMCall.created_at, LLMCall.id)
        .limit(limit)
    )
    tools = await session.scalars(
        select(ToolInvocation)
        .where(ToolInvocation.execution_id.in_(ids))
        .order_by(ToolInvocation.created_at, ToolInvocation.id)
        .limit(limit)
    )
    messages = await session.scalars(
        messages_query.order_by(Message.created_at, Message.id).limit(limit)
    )
    events = await session.scalars(events_query.order_by(Event.id).limit(limit))
    return TraceRows(
        executions=executions,
        llm_calls=list(calls),
        tool_calls=list(tools),
        messages=list(messages),
        events=[to_unified(row) for row in events],
    )


async def anyone_recorded(session: AsyncSession, correlation_id: str) -> bool:
    """Whether any user's execution carries the id (to record a denied read)."""
    found = await session.scalar(
        select(WorkflowExecution.id).where(WorkflowExecution.correlation_id == correlation_id)
    )
    return found is not None

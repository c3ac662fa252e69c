"""The one place that records model calls and tool calls: their rows and the events that
announce them. The live turn and the close both call it. Callers own the transaction: they
pass the returned events to `outbox.write_events` as the transaction's last write (the
event-id counter is always the last lock a transaction takes, so two transactions never
wait on each other in opposite orders) and publish what it returns after the commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.events import DomainEvent, EventType
from chatter.domain.usage import Usage
from chatter.storage.columns import fit, table_of, usage_columns
from chatter.storage.models import LLMCall, ToolInvocation, WorkflowExecution

TOOL_RESULT_IN_EVENT = 1000  # characters of a tool's result carried by its event


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

    @property
    def error(self) -> str | None: ...


async def record_calls(
    session: AsyncSession,
    execution: WorkflowExecution,
    calls: Sequence[CallUsage],
    tools: Sequence[ToolUse] = (),
) -> list[DomainEvent]:
    """Write the rows of `tools` then `calls` (the order they happened in: a tool runs
    between two model calls); returns their `tool_called` / `llm_call_completed` events."""
    # Core inserts of plain rows: the ORM's unit of work cost ~3x the CPU, for objects
    # nobody reads back.
    if tools:
        rows = [tool_call_row(execution.id, execution.correlation_id, t) for t in tools]
        await session.execute(insert(table_of(ToolInvocation)), rows)
    if calls:
        rows = [llm_call_row(execution.id, execution.correlation_id, c) for c in calls]
        await session.execute(insert(table_of(LLMCall)), rows)
    events = [tool_called(execution, tool) for tool in tools]
    return events + [llm_call_completed(execution, call) for call in calls]


def llm_call_row(execution_id: str, correlation_id: str, record: CallUsage) -> dict[str, Any]:
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
    return fit(LLMCall, values)


def tool_call_row(execution_id: str, correlation_id: str, record: ToolUse) -> dict[str, Any]:
    values = {
        "execution_id": execution_id,
        "node": record.node,
        "tool_call_id": record.tool_call_id,
        "name": record.name,
        "arguments": record.arguments,
        "result": record.result,
        "status": record.status,
        "error": record.error,
        "latency_ms": record.latency_ms,
        "correlation_id": correlation_id,
    }
    return fit(ToolInvocation, values)


def llm_call_completed(execution: WorkflowExecution, call: CallUsage) -> DomainEvent:
    usage = call.usage
    return DomainEvent(
        EventType.LLM_CALL_COMPLETED,
        correlation_id=execution.correlation_id,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        execution_id=execution.id,
        data={
            "call_id": call.call_id,
            "node": call.node,
            "provider": call.provider,
            "model": call.model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost": str(usage.cost),
            "cost_known": usage.cost_known,
            "currency": usage.currency,
            "usage_source": usage.source.value,
            "latency_ms": call.latency_ms,
            "time_to_first_token_ms": call.time_to_first_token_ms,
            "finish_reason": call.finish_reason,
            "status": call.status,
            "error": call.error,
        },
    )


def tool_called(execution: WorkflowExecution, tool: ToolUse) -> DomainEvent:
    return DomainEvent(
        EventType.TOOL_CALLED,
        correlation_id=execution.correlation_id,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        execution_id=execution.id,
        data={
            "tool_call_id": tool.tool_call_id,
            "name": tool.name,
            "arguments": tool.arguments,
            "duration_ms": tool.latency_ms,
            "status": "ok" if tool.status == "succeeded" else "error",
            "result": tool.result[:TOOL_RESULT_IN_EVENT],
            "result_truncated": len(tool.result) > TOOL_RESULT_IN_EVENT,
            "error": tool.error[:TOOL_RESULT_IN_EVENT] if tool.error else None,
        },
    )

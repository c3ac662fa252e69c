"""The events a chat turn announces when it opens and when it closes, built from the rows
the same transaction writes (the LLM-call and tool events: storage/llm_calls.py)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from chatter.domain.enums import ExecutionStatus
from chatter.domain.events import DomainEvent, EventType
from chatter.errors import ChatterError
from chatter.storage.models import Conversation, Message, WorkflowExecution
from chatter.storage.rollups import TOKEN_KINDS, Deltas
from chatter.workflows.events import NodeFinished, NodeStarted

TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
)
_CLOSING_TYPE = {
    ExecutionStatus.COMPLETED: EventType.WORKFLOW_COMPLETED,
    ExecutionStatus.FAILED: EventType.WORKFLOW_FAILED,
    ExecutionStatus.CANCELLED: EventType.WORKFLOW_CANCELLED,
}


def _event(execution: WorkflowExecution, kind: EventType, data: dict[str, Any]) -> DomainEvent:
    return DomainEvent(
        kind,
        correlation_id=execution.correlation_id,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        execution_id=execution.id,
        data=data,
    )


def _tokens(row: Conversation | Message | WorkflowExecution) -> dict[str, Any]:
    return {name: getattr(row, name) for name in TOKEN_FIELDS}


def turn_opened(
    execution: WorkflowExecution,
    user_message: Message,
    conversation: Conversation,
    *,
    provider: str,
    model: str,
) -> list[DomainEvent]:
    started = {
        "workflow": execution.workflow_name,
        "provider": provider,
        "model": model,
        "user_message_id": user_message.id,
    }
    return [
        _event(execution, EventType.WORKFLOW_STARTED, started),
        message_created(execution, user_message),
        conversation_updated(execution, conversation),
    ]


def turn_closed(
    execution: WorkflowExecution,
    messages: Sequence[Message],
    conversation: Conversation | None,
    error: ChatterError | None,
    rolled_up: Deltas,
) -> list[DomainEvent]:
    events = [message_created(execution, message) for message in messages]
    events += execution_finished(execution, error, rolled_up)
    if conversation is not None:
        events.append(conversation_updated(execution, conversation))
    return events


def execution_finished(
    execution: WorkflowExecution, error: ChatterError | None, rolled_up: Deltas
) -> list[DomainEvent]:
    """`workflow_completed|failed|cancelled`, then `usage_recorded` for live analytics."""
    return [workflow_finished(execution, error), usage_recorded(execution, rolled_up)]


def usage_recorded(execution: WorkflowExecution, rolled_up: Deltas) -> DomainEvent:
    """What the close added to the analytics rollups (one granularity's worth)."""
    totals = rolled_up.totals()
    by_model: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, counts in rolled_up.rollups.items():
        if key[0] != "day" or not counts.values.get("requests"):
            continue
        _, _, _, provider, model, _, currency = key
        entry = by_model.setdefault(
            (provider, model, currency),
            {
                "provider": provider,
                "model": model,
                "currency": currency,
                "requests": 0,
                "total_tokens": 0,
                "cost": Decimal(0),
            },
        )
        entry["requests"] += counts.values["requests"]
        entry["total_tokens"] += counts.values.get("total_tokens", 0)
        entry["cost"] += counts.cost
    values = totals.values
    costs: dict[str, Decimal] = {}
    for (_, _, entry_currency), entry in by_model.items():
        costs[entry_currency] = costs.get(entry_currency, Decimal(0)) + entry["cost"]
    currency = max(costs, key=lambda name: (costs[name], name)) if costs else "USD"
    return _event(
        execution,
        EventType.USAGE_RECORDED,
        {
            "workflow": execution.workflow_name,
            "status": execution.status,
            "provider": execution.provider,
            "model": execution.model,
            "finished_at": execution.finished_at.isoformat() if execution.finished_at else None,
            "requests": values.get("requests", 0),
            **{kind: values.get(kind, 0) for kind in (*TOKEN_KINDS, "total_tokens")},
            # Known costs by currency (almost always one); `cost` is the main one's.
            "cost": str(costs.get(currency, Decimal(0))),
            "currency": currency,
            "costs": {name: str(amount) for name, amount in costs.items()},
            "unknown_price_calls": values.get("unknown_price_calls", 0),
            "estimated_calls": values.get("estimated_calls", 0),
            "tool_calls": values.get("tool_calls", 0),
            "by_model": [{**entry, "cost": str(entry["cost"])} for entry in by_model.values()],
        },
    )


def workflow_finished(execution: WorkflowExecution, error: ChatterError | None) -> DomainEvent:
    status = ExecutionStatus(execution.status)
    data: dict[str, Any] = {
        "status": status.value,
        "workflow": execution.workflow_name,
        **_tokens(execution),
        "cost": str(execution.total_cost),
        "duration_ms": execution.duration_ms,
        "llm_call_count": execution.llm_call_count,
    }
    if status is ExecutionStatus.FAILED:
        data["error"] = {
            "code": error.code if error is not None else "internal_error",
            "message": error.message if error is not None else execution.error,
        }
    elif status is ExecutionStatus.CANCELLED:
        data["reason"] = execution.error
    return _event(execution, _CLOSING_TYPE[status], data)


def node_event(execution: WorkflowExecution, event: NodeStarted | NodeFinished) -> DomainEvent:
    """`node_started` / `node_finished`: written with the turn's next commit (see
    docs/workflows.md), so they are in the outbox like every other event."""
    if isinstance(event, NodeStarted):
        return _event(execution, EventType.NODE_STARTED, {"node": event.node, "type": event.type})
    timing = event.timing()
    timing.pop("started_at_ns")
    return _event(execution, EventType.NODE_FINISHED, timing)


def message_created(execution: WorkflowExecution, message: Message) -> DomainEvent:
    return _event(
        execution,
        EventType.MESSAGE_CREATED,
        {
            "message_id": message.id,
            "role": message.role,
            "sequence": message.sequence,
            "status": message.status,
            **_tokens(message),
            "cost": str(message.cost),
        },
    )


def conversation_updated(execution: WorkflowExecution, conversation: Conversation) -> DomainEvent:
    return _event(
        execution,
        EventType.CONVERSATION_UPDATED,
        {
            "message_count": conversation.message_count,
            **_tokens(conversation),
            "total_cost": str(conversation.total_cost),
            "last_message_at": (
                conversation.last_message_at.isoformat() if conversation.last_message_at else None
            ),
        },
    )

"""Turn events -> Server-Sent Events (start, delta, tool_call, tool_result, usage, node_started,
node_finished, done, error)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi.encoders import jsonable_encoder
from sse_starlette import ServerSentEvent

from chatter.api.schemas.chat import ExecutionOut
from chatter.api.schemas.common import money_text
from chatter.api.schemas.conversations import ConversationOut, MessageOut
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnRefused, TurnStarted
from chatter.workflows.events import (
    ModelCallFinished,
    ModelCallRecord,
    NodeFinished,
    NodeStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallRequested,
)


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(jsonable_encoder(data)), event=name)


def usage_payload(record: ModelCallRecord) -> dict[str, Any]:
    usage = record.usage
    return {
        "call_id": record.call_id,
        "node": record.node,
        "provider": record.provider,
        "model": record.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost": money_text(usage.cost),
        "cost_known": usage.cost_known,
        "currency": usage.currency,
        "usage_source": usage.source.value,
        "latency_ms": record.latency_ms,
        "time_to_first_token_ms": record.time_to_first_token_ms,
        "finish_reason": record.finish_reason,
    }


def _closed_payload(closed: TurnClosed) -> dict[str, Any]:
    return {
        "conversation": ConversationOut.model_validate(closed.conversation),
        "assistant_message": MessageOut.model_validate(closed.assistant_message),
        "tool_messages": [MessageOut.model_validate(m) for m in closed.tool_messages],
        "execution": ExecutionOut.model_validate(closed.execution),
    }


def to_sse(event: TurnEvent) -> ServerSentEvent | None:
    if isinstance(event, TurnStarted):
        return _event(
            "start",
            {
                "conversation_id": event.conversation.id,
                "user_message_id": event.user_message.id,
                "execution_id": event.execution.id,
                "correlation_id": event.correlation_id,
            },
        )
    if isinstance(event, TextDelta):
        return _event("delta", {"text": event.text})
    if isinstance(event, ToolCallRequested):
        return _event(
            "tool_call",
            {"id": event.tool_call_id, "name": event.name, "arguments": event.arguments},
        )
    if isinstance(event, ToolCallFinished):
        record = event.record
        return _event(
            "tool_result",
            {
                "id": record.tool_call_id,
                "name": record.name,
                "result": record.result,
                "status": record.status,
                "error": record.error,
            },
        )
    if isinstance(event, ModelCallFinished):
        return _event("usage", usage_payload(event.record))
    if isinstance(event, NodeStarted):
        return _event("node_started", {"node": event.node, "type": event.type})
    if isinstance(event, NodeFinished):
        timing = event.timing()
        timing.pop("started_at_ns")
        return _event("node_finished", timing)
    if isinstance(event, TurnRefused):
        error = event.error
        return _event(
            "error", {"code": error.code, "message": error.message, "details": error.details}
        )
    return _closed(event)


def _closed(event: TurnClosed) -> ServerSentEvent:
    if event.error is None:
        return _event("done", _closed_payload(event))
    return _event(
        "error",
        {"code": event.error.code, "message": event.error.message, **_closed_payload(event)},
    )


async def sse_stream(events: AsyncGenerator[TurnEvent]) -> AsyncIterator[ServerSentEvent]:
    # aclosing: when the client goes away the turn's generator must be closed right now
    # (it cancels the model call and records the partial turn), not at garbage collection.
    async with aclosing(events):
        async for event in events:
            sse = to_sse(event)
            if sse is not None:
                yield sse

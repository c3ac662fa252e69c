"""One log line per model call, written from its committed `llm_call_completed` event (a
listener of EventPublisher, like the metrics): who, which execution, which model, what it
used and cost, how long it took. Never the messages or the answer."""

from __future__ import annotations

from collections.abc import Sequence

from chatter.domain.events import EventType, UnifiedEvent
from chatter.observability.logging import get_logger

log = get_logger("chatter.llm")
LOGGED_FIELDS = (
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "cost_known",
    "currency",
    "usage_source",
    "latency_ms",
    "time_to_first_token_ms",
    "finish_reason",
    "status",
)


def log_model_calls(events: Sequence[UnifiedEvent]) -> None:
    for event in events:
        if event.type is not EventType.LLM_CALL_COMPLETED:
            continue
        log.info(
            "llm_call",
            correlation_id=event.correlation_id,
            user_id=event.user_id,
            execution_id=event.execution_id,
            conversation_id=event.conversation_id,
            **{name: event.data.get(name) for name in LOGGED_FIELDS},
        )

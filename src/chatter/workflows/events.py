"""What the executor streams: typed events, one union. SSE and non-streaming chat consume it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from chatter.domain.usage import Usage


@dataclass(frozen=True)
class ModelCallRecord:
    """One model call: who, what it used and cost, how long it took, how it ended."""

    call_id: str
    node: str
    provider: str
    model: str
    usage: Usage
    price_source: str
    latency_ms: int
    time_to_first_token_ms: int | None
    finish_reason: str | None
    status: str  # LLMCallStatus
    error: str | None = None
    content: str = ""
    response_model: str | None = None  # the model name the provider answered with
    # Wall-clock start and end (ns since the epoch), for trace spans after the fact.
    started_at_ns: int = 0
    ended_at_ns: int = 0


@dataclass(frozen=True)
class ToolCallRecord:
    tool_call_id: str
    node: str
    name: str
    arguments: dict[str, Any]
    result: str
    status: str  # "succeeded" | "failed"
    latency_ms: int
    started_at_ns: int = 0  # wall clock, ns since the epoch (trace spans)
    ended_at_ns: int = 0
    error: str | None = None  # why it failed (the model got it as the result, too)


@dataclass(frozen=True)
class TextDelta:
    node: str
    text: str


@dataclass(frozen=True)
class ToolCallRequested:
    node: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolCallFinished:
    record: ToolCallRecord


@dataclass(frozen=True)
class ModelCallFinished:
    record: ModelCallRecord


@dataclass(frozen=True)
class NodeStarted:
    node: str
    type: str


@dataclass(frozen=True)
class NodeFinished:
    """A node's step: how long it took and the usage of the model calls it made."""

    node: str
    type: str
    duration_ms: int
    status: str  # "succeeded" | "failed"
    usage: Usage
    llm_calls: int
    started_at_ns: int = 0

    def timing(self) -> dict[str, Any]:
        """As stored in the execution's `node_timings` (JSON)."""
        return {
            "node": self.node,
            "type": self.type,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "started_at_ns": self.started_at_ns,
            "llm_calls": self.llm_calls,
            **usage_json(self.usage),
        }


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost": format(usage.cost.normalize(), "f") if usage.cost else "0",
        "currency": usage.currency,
    }


@dataclass(frozen=True)
class ToolIterationLimitReached:
    """The model made its last permitted call with tools; this call must answer without."""

    node: str
    limit: int

    @property
    def notice(self) -> str:
        return (
            f"Tool iteration limit reached: {self.limit} model calls used tools "
            "(CHATTER_LLM__MAX_TOOL_ITERATIONS); the last call had to answer without them."
        )


@dataclass(frozen=True)
class WorkflowResult:
    """The end of a run: the messages it added and the sum of its calls' usage."""

    messages: list[BaseMessage]
    calls: list[ModelCallRecord]
    tool_calls: list[ToolCallRecord]
    usage: Usage
    final_text: str
    finish_reason: str | None
    time_to_first_token_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkflowFinished:
    result: WorkflowResult


WorkflowEvent = (
    TextDelta
    | ToolCallRequested
    | ToolCallFinished
    | ModelCallFinished
    | NodeStarted
    | NodeFinished
    | ToolIterationLimitReached
    | WorkflowFinished
)

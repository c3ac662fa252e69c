"""Monitoring values: one execution's metrics and the statistics over a time window.

Built by the live view (services/workflow_tracker.py, fed by the event bus) and by the
database queries (storage/monitoring.py) alike, so both answer in the same shape."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)
# Caps on what one execution's metrics hold, whatever a runaway workflow does.
MAX_ERRORS = 20
MAX_NAMES = 20


class StatsWindow(StrEnum):
    MINUTES_15 = "15m"
    HOUR_1 = "1h"
    HOURS_24 = "24h"
    DAYS_7 = "7d"

    @property
    def span(self) -> timedelta:
        return _SPANS[self]


_SPANS = {
    StatsWindow.MINUTES_15: timedelta(minutes=15),
    StatsWindow.HOUR_1: timedelta(hours=1),
    StatsWindow.HOURS_24: timedelta(hours=24),
    StatsWindow.DAYS_7: timedelta(days=7),
}


@dataclass(slots=True)
class UsageTotals:
    """Tokens and cost summed over model calls."""

    llm_call_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = ZERO
    cost_known: bool = True

    def add(self, other: UsageTotals) -> None:
        self.llm_call_count += other.llm_call_count
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.total_tokens += other.total_tokens
        self.cost += other.cost
        self.cost_known = self.cost_known and other.cost_known


@dataclass(frozen=True, slots=True)
class CallSample:
    """One model call as monitoring sees it (the `llm_call_completed` event's data)."""

    provider: str
    model: str
    usage: UsageTotals
    currency: str = "USD"
    latency_ms: int = 0
    time_to_first_token_ms: int | None = None
    node: str = "model"
    status: str = "succeeded"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSample:
    """One tool call as monitoring sees it (the `tool_called` event's data)."""

    name: str
    duration_ms: int = 0
    status: str = "ok"
    node: str = "tools"


@dataclass(slots=True)
class WorkflowMetrics:
    """One execution: who ran what, how long each node took, what it used and cost."""

    execution_id: str
    workflow: str
    user_id: str | None
    conversation_id: str | None
    correlation_id: str | None
    started_at: datetime
    status: str = "running"
    providers: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    duration_ms: int | None = None
    node_timings: dict[str, int] = field(default_factory=dict)
    llm_call_count: int = 0
    tool_call_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = ZERO
    currency: str = "USD"
    cost_known: bool = True
    errors: list[str] = field(default_factory=list)
    time_to_first_token_ms: int | None = None
    # Usage per (provider, model, currency), for the by-provider and by-model groups.
    model_usage: dict[tuple[str, str, str], UsageTotals] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def record_call(self, call: CallSample) -> None:
        """Add one model call: its usage, its node's time, and the first call's TTFT."""
        usage = replace(call.usage, llm_call_count=1)
        if self.llm_call_count == 0:
            self.time_to_first_token_ms = call.time_to_first_token_ms
            self.currency = call.currency
        totals = self.totals()
        totals.add(usage)
        self.set_totals(totals)
        key = (call.provider, call.model, call.currency)
        if key in self.model_usage or len(self.model_usage) < MAX_NAMES:
            self.model_usage.setdefault(key, UsageTotals()).add(usage)
        self.add_name(self.providers, call.provider)
        self.add_name(self.models, call.model)
        self.add_node_time(call.node, call.latency_ms)
        if call.error:
            self.add_error(call.error)

    def record_tool(self, tool: ToolSample) -> None:
        self.tool_call_count += 1
        self.add_node_time(tool.node, tool.duration_ms)
        if tool.status != "ok":
            self.add_error(f"tool {tool.name}: {tool.status}")

    def totals(self) -> UsageTotals:
        return UsageTotals(
            llm_call_count=self.llm_call_count,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
            total_tokens=self.total_tokens,
            cost=self.cost,
            cost_known=self.cost_known,
        )

    def add_name(self, names: list[str], name: str) -> None:
        if name and name not in names and len(names) < MAX_NAMES:
            names.append(name)

    def add_error(self, error: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)

    def add_node_time(self, node: str, ms: int) -> None:
        if node in self.node_timings or len(self.node_timings) < MAX_NAMES:
            self.node_timings[node] = self.node_timings.get(node, 0) + ms

    def set_totals(self, totals: UsageTotals) -> None:
        self.llm_call_count = totals.llm_call_count
        self.prompt_tokens = totals.prompt_tokens
        self.completion_tokens = totals.completion_tokens
        self.cached_tokens = totals.cached_tokens
        self.reasoning_tokens = totals.reasoning_tokens
        self.total_tokens = totals.total_tokens
        self.cost = totals.cost
        self.cost_known = totals.cost_known


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50: int | None = None
    p95: int | None = None
    p99: int | None = None
    count: int = 0

    @classmethod
    def of(cls, values: Sequence[int]) -> Percentiles:
        """Nearest-rank percentiles (each one a value that occurred)."""
        ordered = sorted(values)
        if not ordered:
            return cls()

        def rank(q: float) -> int:
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

        return cls(rank(0.50), rank(0.95), rank(0.99), len(ordered))


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Usage under one key (a provider, a model or a workflow) in one currency."""

    key: str
    currency: str
    execution_count: int
    usage: UsageTotals


@dataclass(frozen=True, slots=True)
class WorkflowStats:
    """Statistics over executions started in [since, until)."""

    window: timedelta
    since: datetime
    until: datetime
    source: str  # "live" (memory) or "database"
    workflow_ops: list[WorkflowMetrics]
    counts_by_status: dict[str, int]
    duration_ms: Percentiles
    time_to_first_token_ms: Percentiles
    by_provider: list[UsageGroup]
    by_model: list[UsageGroup]
    by_workflow: list[UsageGroup]
    security_events: dict[str, int]

    @property
    def finished_count(self) -> int:
        return sum(n for status, n in self.counts_by_status.items() if status != "running")

    @property
    def error_rate(self) -> float:
        """Failed executions over finished ones (0 when none finished)."""
        finished = self.finished_count
        return self.counts_by_status.get("failed", 0) / finished if finished else 0.0

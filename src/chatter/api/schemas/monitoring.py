"""Monitoring bodies: executions with their metrics, and statistics over a window."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chatter.api.schemas.common import ApiModel, Money, TokenCountsOut
from chatter.domain.monitoring import Percentiles, StatsWindow, UsageGroup, WorkflowStats


class WorkflowMetricsOut(TokenCountsOut):
    """One execution as monitoring sees it."""

    execution_id: str
    workflow: str
    user_id: str | None
    conversation_id: str | None
    correlation_id: str | None
    status: str
    providers: list[str]
    models: list[str]
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    node_timings: dict[str, int] = Field(
        description="Milliseconds per workflow node: its model calls' latency and its tool "
        "calls' durations, summed."
    )
    llm_call_count: int
    tool_call_count: int
    cost: Money
    currency: str
    cost_known: bool
    errors: list[str]
    time_to_first_token_ms: int | None = Field(description="Of the execution's first call.")


class PercentilesOut(ApiModel):
    p50: int | None
    p95: int | None
    p99: int | None
    count: int = Field(description="How many values they are computed over.")


class UsageGroupOut(TokenCountsOut):
    key: str = Field(description="The provider, `provider/model`, or workflow.")
    currency: str
    execution_count: int
    llm_call_count: int
    cost: Money
    cost_known: bool

    @classmethod
    def of(cls, group: UsageGroup) -> UsageGroupOut:
        usage = group.usage
        return cls(
            key=group.key,
            currency=group.currency,
            execution_count=group.execution_count,
            llm_call_count=usage.llm_call_count,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=usage.cost,
            cost_known=usage.cost_known,
        )


class StatsOut(BaseModel):
    """Executions started in [since, until]."""

    window: StatsWindow
    since: datetime
    until: datetime
    source: str = Field(description="`database`: the API always reads the source of truth.")
    counts_by_status: dict[str, int]
    error_rate: float = Field(description="Failed executions over finished ones (0 if none).")
    duration_ms: PercentilesOut
    time_to_first_token_ms: PercentilesOut
    by_provider: list[UsageGroupOut]
    by_model: list[UsageGroupOut]
    by_workflow: list[UsageGroupOut]
    security_events: dict[str, int] | None = Field(
        description="Security events by type, server-wide: admins only (null for others; "
        "empty when an admin asks for one user)."
    )
    workflow_ops: list[WorkflowMetricsOut] = Field(description="The newest executions.")

    @classmethod
    def of(cls, window: StatsWindow, stats: WorkflowStats, *, admin: bool) -> StatsOut:
        return cls(
            window=window,
            since=stats.since,
            until=stats.until,
            source=stats.source,
            counts_by_status=stats.counts_by_status,
            error_rate=stats.error_rate,
            duration_ms=_percentiles(stats.duration_ms),
            time_to_first_token_ms=_percentiles(stats.time_to_first_token_ms),
            by_provider=[UsageGroupOut.of(g) for g in stats.by_provider],
            by_model=[UsageGroupOut.of(g) for g in stats.by_model],
            by_workflow=[UsageGroupOut.of(g) for g in stats.by_workflow],
            security_events=stats.security_events if admin else None,
            workflow_ops=[WorkflowMetricsOut.model_validate(m) for m in stats.workflow_ops],
        )


def _percentiles(values: Percentiles) -> PercentilesOut:
    return PercentilesOut.model_validate(values)

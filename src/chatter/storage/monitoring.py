"""Monitoring read from the database, the source of truth: executions with their metrics,
and statistics over a window aggregated in SQL from `workflow_executions`, `llm_calls`,
`tool_calls` and the security events of `events`.

An execution belongs to a window when it *started* in it; its model calls are counted
with it (joined on the execution), so every group sums to the executions' usage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.events import EventCategory
from chatter.domain.monitoring import (
    CallSample,
    Percentiles,
    ToolSample,
    UsageGroup,
    UsageTotals,
    WorkflowMetrics,
    WorkflowStats,
)
from chatter.storage.models import Event, LLMCall, ToolInvocation, WorkflowExecution

_TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")


@dataclass(frozen=True)
class ExecutionQuery:
    """Which executions to list. `user_id=None`: everyone's (admins)."""

    user_id: str | None
    status: str | None = None
    workflow: str | None = None
    provider: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(query: ExecutionQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.user_id is not None:
        conditions.append(WorkflowExecution.user_id == query.user_id)
    if query.status is not None:
        conditions.append(WorkflowExecution.status == query.status)
    if query.workflow is not None:
        conditions.append(WorkflowExecution.workflow_name == query.workflow)
    if query.since is not None:
        conditions.append(WorkflowExecution.started_at >= query.since)
    if query.until is not None:
        conditions.append(WorkflowExecution.started_at <= query.until)
    # An execution "used" a provider or model when one of its calls did.
    calls = select(LLMCall.id).where(LLMCall.execution_id == WorkflowExecution.id)
    if query.provider is not None:
        conditions.append(calls.where(LLMCall.provider == query.provider).exists())
    if query.model is not None:
        conditions.append(calls.where(LLMCall.model == query.model).exists())
    return conditions


async def execution_page(
    session: AsyncSession,
    query: ExecutionQuery,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[WorkflowExecution]:
    """Matching executions, newest start first, below the keyset `after`."""
    statement = select(WorkflowExecution).where(*_where(query))
    if after is not None:
        started_at, execution_id = after
        statement = statement.where(
            or_(
                WorkflowExecution.started_at < started_at,
                and_(
                    WorkflowExecution.started_at == started_at,
                    WorkflowExecution.id < execution_id,
                ),
            )
        )
    statement = statement.order_by(
        WorkflowExecution.started_at.desc(), WorkflowExecution.id.desc()
    ).limit(limit)
    return list(await session.scalars(statement))


async def metrics_of(
    session: AsyncSession, executions: Sequence[WorkflowExecution]
) -> list[WorkflowMetrics]:
    """Each execution's metrics, from its call rows (a running one's totals so far)."""
    metrics = {e.id: _metrics(e) for e in executions}
    if not metrics:
        return []
    calls = await session.scalars(
        select(LLMCall)
        .where(LLMCall.execution_id.in_(metrics))
        .order_by(LLMCall.created_at, LLMCall.id)
    )
    for call in calls:
        metrics[call.execution_id].record_call(call_sample(call))
    tools = await session.scalars(
        select(ToolInvocation)
        .where(ToolInvocation.execution_id.in_(metrics))
        .order_by(ToolInvocation.created_at, ToolInvocation.id)
    )
    for tool in tools:
        metrics[tool.execution_id].record_tool(tool_sample(tool))
    for execution in executions:
        if execution.status != "running":  # the closed row's totals are the record
            metrics[execution.id].set_totals(_row_totals(execution, metrics[execution.id]))
    return [metrics[e.id] for e in executions]


def _metrics(execution: WorkflowExecution) -> WorkflowMetrics:
    metrics = WorkflowMetrics(
        execution_id=execution.id,
        workflow=execution.workflow_name,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        correlation_id=execution.correlation_id,
        started_at=execution.started_at,
        status=execution.status,
        finished_at=execution.finished_at,
        duration_ms=execution.duration_ms,
    )
    if execution.error:
        metrics.add_error(execution.error)
    return metrics


def _row_totals(execution: WorkflowExecution, metrics: WorkflowMetrics) -> UsageTotals:
    return UsageTotals(
        llm_call_count=execution.llm_call_count,
        prompt_tokens=execution.prompt_tokens,
        completion_tokens=execution.completion_tokens,
        cached_tokens=execution.cached_tokens,
        reasoning_tokens=execution.reasoning_tokens,
        total_tokens=execution.total_tokens,
        cost=execution.total_cost,
        cost_known=metrics.cost_known,
    )


def call_sample(call: LLMCall) -> CallSample:
    usage = UsageTotals(
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cached_tokens=call.cached_tokens,
        reasoning_tokens=call.reasoning_tokens,
        total_tokens=call.total_tokens,
        cost=call.cost,
        cost_known=call.cost_known,
    )
    return CallSample(
        provider=call.provider,
        model=call.model,
        usage=usage,
        currency=call.currency,
        latency_ms=call.latency_ms,
        time_to_first_token_ms=call.time_to_first_token_ms,
        node=call.node,
        status=call.status,
        error=call.error,
    )


def tool_sample(tool: ToolInvocation) -> ToolSample:
    status = "ok" if tool.status == "succeeded" else "error"
    return ToolSample(name=tool.name, duration_ms=tool.latency_ms, status=status, node=tool.node)


async def window_stats(
    session: AsyncSession,
    *,
    user_id: str | None,
    until: datetime,
    window: timedelta,
    ops_limit: int,
    sample_limit: int,
    with_security: bool,
) -> WorkflowStats:
    """Statistics over one user's (None: everyone's) executions started in the window."""
    since = until - window
    query = ExecutionQuery(user_id=user_id, since=since, until=until)
    where = _where(query)
    counts = await session.execute(
        select(WorkflowExecution.status, func.count())
        .where(*where)
        .group_by(WorkflowExecution.status)
    )
    ops = await execution_page(session, query, after=None, limit=ops_limit)
    return WorkflowStats(
        window=window,
        since=since,
        until=until,
        source="database",
        workflow_ops=await metrics_of(session, ops),
        counts_by_status={status: count for status, count in counts},
        duration_ms=await _duration_percentiles(session, where, sample_limit),
        time_to_first_token_ms=await _ttft_percentiles(session, where, sample_limit),
        by_provider=await _groups(session, where, LLMCall.provider),
        by_model=await _groups(session, where, LLMCall.provider, LLMCall.model),
        by_workflow=await _groups(session, where, WorkflowExecution.workflow_name),
        security_events=(await security_counts(session, since, until) if with_security else {}),
    )


async def _duration_percentiles(
    session: AsyncSession, where: list[ColumnElement[bool]], sample_limit: int
) -> Percentiles:
    """Over the newest `sample_limit` finished executions of the window."""
    durations = await session.scalars(
        select(WorkflowExecution.duration_ms)
        .where(*where, WorkflowExecution.duration_ms.is_not(None))
        .order_by(WorkflowExecution.started_at.desc())
        .limit(sample_limit)
    )
    return Percentiles.of([d for d in durations if d is not None])


async def _ttft_percentiles(
    session: AsyncSession, where: list[ColumnElement[bool]], sample_limit: int
) -> Percentiles:
    """Each execution's first model call's time to first token."""
    ranked = (
        select(
            LLMCall.time_to_first_token_ms.label("ttft"),
            WorkflowExecution.started_at.label("started_at"),
            func.row_number()
            .over(partition_by=LLMCall.execution_id, order_by=(LLMCall.created_at, LLMCall.id))
            .label("n"),
        )
        .join(WorkflowExecution, WorkflowExecution.id == LLMCall.execution_id)
        .where(*where)
        .subquery()
    )
    values = await session.scalars(
        select(ranked.c.ttft)
        .where(ranked.c.n == 1, ranked.c.ttft.is_not(None))
        .order_by(ranked.c.started_at.desc())
        .limit(sample_limit)
    )
    return Percentiles.of([v for v in values if v is not None])


async def _groups(
    session: AsyncSession, where: list[ColumnElement[bool]], *keys: Any
) -> list[UsageGroup]:
    statement: Select[Any] = (
        select(
            *keys,
            LLMCall.currency,
            func.count(func.distinct(LLMCall.execution_id)),
            func.count(LLMCall.id),
            *[func.coalesce(func.sum(getattr(LLMCall, name)), 0) for name in _TOKENS],
            func.sum(LLMCall.cost),
            func.count(LLMCall.id).filter(LLMCall.cost_known.is_(False)),
        )
        .join(WorkflowExecution, WorkflowExecution.id == LLMCall.execution_id)
        .where(*where)
        .group_by(*keys, LLMCall.currency)
        .order_by(*keys, LLMCall.currency)
    )
    groups = []
    for row in await session.execute(statement):
        *names, currency, executions, calls, prompt, completion, cached, reasoning = row[:-2]
        cost, unknown = row[-2:]
        usage = UsageTotals(
            llm_call_count=calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            total_tokens=prompt + completion,
            cost=cost if cost is not None else Decimal(0),
            cost_known=unknown == 0,
        )
        groups.append(UsageGroup("/".join(names), currency, executions, usage))
    return groups


async def security_counts(
    session: AsyncSession, since: datetime, until: datetime
) -> dict[str, int]:
    rows = await session.execute(
        select(Event.type, func.count())
        .where(
            Event.category == EventCategory.SECURITY.value,
            Event.created_at >= since,
            Event.created_at <= until,
        )
        .group_by(Event.type)
    )
    return {event_type: count for event_type, count in rows}

"""Closing an execution with totals summed, in SQL, from its LLM-call rows."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import ExecutionStatus, UsageSource
from chatter.domain.usage import TokenCounts, Usage
from chatter.storage.columns import fit
from chatter.storage.models import LLMCall, WorkflowExecution


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

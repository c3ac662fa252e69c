"""Closing an execution with totals summed, in SQL, from its LLM-call rows, and rolling it
up for analytics in the same transaction - the only way an execution is closed."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import ExecutionStatus, UsageSource
from chatter.domain.usage import TokenCounts, Usage
from chatter.storage import rollups
from chatter.storage.columns import fit
from chatter.storage.models import LLMCall, WorkflowExecution


async def finish_execution(
    session: AsyncSession,
    execution: WorkflowExecution,
    status: ExecutionStatus,
    error: str | None,
) -> rollups.Deltas | None:
    """Close a running execution with totals summed from its LLM call rows, in SQL, and
    add it to the analytics rollups. Returns what was rolled up, or None when it was not
    running any more.

    Guarded on `status = 'running'`, so closing twice (a crash recovery racing a late
    close) changes nothing the second time.
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
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    facts = rollups.ExecutionFacts(
        execution_id=execution.id,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        workflow=execution.workflow_name,
        status=status.value,
        finished_at=now,
        provider=execution.provider,
        model=execution.model,
        tool_calls=(await rollups.tool_counts(session, [execution.id])).get(execution.id, 0),
    )
    return await rollups.record_completion(session, facts)


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

"""Closing an execution: its totals and its analytics increments from one read of its
LLM-call rows - the only way an execution is closed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import ExecutionStatus, UsageSource
from chatter.domain.usage import TokenCounts, Usage
from chatter.storage import rollups
from chatter.storage.columns import fit
from chatter.storage.models import WorkflowExecution


@dataclass(frozen=True)
class Closed:
    """What closing an execution decided: its usage (the sum of its calls) and its analytics
    increments. The caller writes `rollup` with `rollups.record_completion` in the same
    transaction, as its last write before the outbox: the rows of everyone's rollups are
    shared by every turn, so they are locked as late, and held as briefly, as possible."""

    usage: Usage
    rollup: rollups.Deltas
    execution: WorkflowExecution  # as the close left it (RETURNING: no second read)


async def finish_execution(
    session: AsyncSession,
    execution: WorkflowExecution,
    status: ExecutionStatus,
    error: str | None,
    *,
    tool_calls: int | None = None,
    node_timings: list[dict[str, Any]] | None = None,
) -> Closed | None:
    """Close a running execution with totals summed from its LLM call rows; None when it
    was not running any more. `tool_calls`: how many tool rows it has, when the caller
    knows for certain (saves counting them).

    Guarded on `status = 'running'`, so closing twice (a crash recovery racing a late
    close) changes nothing the second time. The totals and the rollup increments come
    from one read of the call rows, so they cannot disagree: that read follows the row
    lock, so a call recorded concurrently (`lock_running`) is either in it or not recorded.
    """
    # On SQLite the write transaction already excludes every other writer, and the UPDATE
    # below is guarded: the lock would be one more statement for nothing.
    sqlite = session.get_bind().dialect.name == "sqlite"
    if not sqlite and not await lock_running(session, execution.id):
        return None
    calls = (await rollups.calls_of(session, [execution.id])).get(execution.id, [])
    usage = usage_of(calls)
    now = utcnow()
    closed = await session.scalar(
        update(WorkflowExecution)
        .where(
            WorkflowExecution.id == execution.id,
            WorkflowExecution.status == ExecutionStatus.RUNNING.value,
        )
        .values(
            status=status.value,
            finished_at=now,
            duration_ms=int((now - execution.started_at).total_seconds() * 1000),
            llm_call_count=len(calls),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_cost=usage.cost,
            # In the same UPDATE: per-node timings cost the close no statement.
            **({"node_timings": node_timings} if node_timings else {}),
            **fit(WorkflowExecution, {"error": error}),
        )
        .returning(WorkflowExecution)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if closed is None:
        return None
    if tool_calls is None:  # not known to the caller: count the rows
        tool_calls = (await rollups.tool_counts(session, [execution.id])).get(execution.id, 0)
    facts = rollups.facts_of(execution, status=status.value, finished_at=now, tool_calls=tool_calls)
    rollup = rollups.Deltas()
    rollup.add_execution(facts, calls)
    return Closed(usage, rollup, closed)


async def lock_running(session: AsyncSession, execution_id: str) -> bool:
    """Whether the execution is still running, holding its row until commit (PostgreSQL:
    `FOR UPDATE`; SQLite: the write transaction already excludes every other writer).
    Recording a call and closing take it first, so no call row lands on an execution
    after its totals were summed."""
    found = await session.scalar(
        select(WorkflowExecution.id)
        .where(
            WorkflowExecution.id == execution_id,
            WorkflowExecution.status == ExecutionStatus.RUNNING.value,
        )
        .with_for_update()
    )
    return found is not None


def usage_of(calls: Sequence[rollups.CallFacts]) -> Usage:
    """The exact sum of the calls' usage (Decimal costs, so no rounding)."""
    return Usage(
        tokens=TokenCounts(
            sum(call.prompt_tokens for call in calls),
            sum(call.completion_tokens for call in calls),
            sum(call.cached_tokens for call in calls),
            sum(call.reasoning_tokens for call in calls),
        ),
        cost=sum((call.cost for call in calls), Decimal(0)),
        cost_known=all(call.cost_known for call in calls),
        source=(
            UsageSource.ESTIMATED
            if any(call.usage_source == UsageSource.ESTIMATED.value for call in calls)
            else UsageSource.PROVIDER
        ),
    )

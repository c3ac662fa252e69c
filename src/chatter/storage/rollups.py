"""Analytics rollups: what finished executions used, summed per UTC bucket (minute, hour,
day) and key (user, provider, model, workflow, currency).

An execution is rolled up once, in the transaction that closes it, into the buckets of the
moment it finished: its model calls by their own provider and model, its own counts
(executions, errors, cancelled, tool calls) under the provider and model it resolved to.
The live close and `chatter analytics rebuild` both turn rows into increments with
`add_execution`, so a rebuild reproduces exactly what the closes wrote."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import ExecutionStatus, LLMCallStatus, UsageSource
from chatter.domain.histogram import bucket_of
from chatter.storage.models import LLMCall, ToolInvocation, WorkflowExecution
from chatter.storage.rollup_tables import (
    CONVERSATION_DAY_COUNTS,
    CONVERSATION_DAY_KEY,
    ROLLUP_ALL_KEY,
    ROLLUP_COUNTS,
    ROLLUP_KEY,
    USER_DAY_COUNTS,
    USER_DAY_KEY,
    conversation_usage_days,
    usage_rollups,
    usage_rollups_all,
    user_usage_days,
)

GRANULARITIES = ("minute", "hour", "day")
DEFAULT_CURRENCY = "USD"
TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def bucket_start(moment: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_step(granularity: str) -> timedelta:
    return _STEP[granularity]


@dataclass(frozen=True)
class ExecutionFacts:
    """What rolling up needs of a finished execution."""

    execution_id: str
    user_id: str
    conversation_id: str | None
    workflow: str
    status: str
    finished_at: datetime
    provider: str | None
    model: str | None
    tool_calls: int


@dataclass(frozen=True)
class CallFacts:
    """What rolling up needs of one LLM call row."""

    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: Decimal
    cost_known: bool
    currency: str
    usage_source: str
    latency_ms: int
    time_to_first_token_ms: int | None
    status: str


@dataclass
class Counts:
    values: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cost: Decimal = Decimal(0)

    def add(self, other: Counts) -> None:
        for name, value in other.values.items():
            self.values[name] += value
        self.cost += other.cost


@dataclass
class Deltas:
    """Increments for the rollup tables, keyed like their rows."""

    rollups: dict[tuple[Any, ...], Counts] = field(default_factory=lambda: defaultdict(Counts))
    conversations: dict[tuple[Any, ...], Counts] = field(
        default_factory=lambda: defaultdict(Counts)
    )
    conversation_users: dict[str, str] = field(default_factory=dict)

    def add_execution(self, execution: ExecutionFacts, calls: Sequence[CallFacts]) -> None:
        own_key = (
            execution.provider or (calls[0].provider if calls else ""),
            execution.model or (calls[0].model if calls else ""),
            calls[0].currency if calls else DEFAULT_CURRENCY,
        )
        own = Counts()
        own.values["executions"] = 1
        own.values["errors"] = int(execution.status == ExecutionStatus.FAILED.value)
        own.values["cancelled"] = int(execution.status == ExecutionStatus.CANCELLED.value)
        own.values["tool_calls"] = execution.tool_calls
        self._add(execution, own_key, own)
        for call in calls:
            self._add(execution, (call.provider, call.model, call.currency), _call_counts(call))
            if execution.conversation_id is not None:
                day = bucket_start(execution.finished_at, "day")
                counts = Counts()
                counts.values["requests"] = 1
                counts.values["total_tokens"] = call.prompt_tokens + call.completion_tokens
                counts.cost = call.cost if call.cost_known else Decimal(0)
                self.conversations[(day, execution.conversation_id, call.currency)].add(counts)
                self.conversation_users[execution.conversation_id] = execution.user_id

    def _add(self, execution: ExecutionFacts, key: tuple[str, str, str], counts: Counts) -> None:
        provider, model, currency = key
        for granularity in GRANULARITIES:
            bucket = bucket_start(execution.finished_at, granularity)
            row_key = (
                granularity,
                bucket,
                execution.user_id,
                provider,
                model,
                execution.workflow,
                currency,
            )
            self.rollups[row_key].add(counts)

    def everyone(self) -> dict[tuple[Any, ...], Counts]:
        """The rollups summed over users: the rows of `usage_rollups_all`."""
        summed: dict[tuple[Any, ...], Counts] = defaultdict(Counts)
        for key, counts in self.rollups.items():
            summed[key[:2] + key[3:]].add(counts)
        return summed

    def user_days(self) -> dict[tuple[Any, ...], Counts]:
        """The day rollups summed per user: the rows of `user_usage_days`."""
        summed: dict[tuple[Any, ...], Counts] = defaultdict(Counts)
        for key, counts in self.rollups.items():
            if key[0] == "day":
                day = summed[(key[1], key[2], key[6])]
                for name in USER_DAY_COUNTS:
                    day.values[name] += counts.values.get(name, 0)
                day.cost += counts.cost
        return summed

    def totals(self) -> Counts:
        """Everything in one granularity (each execution is in all three)."""
        total = Counts()
        for key, counts in self.rollups.items():
            if key[0] == "day":
                total.add(counts)
        return total


def _call_counts(call: CallFacts) -> Counts:
    counts = Counts()
    values = counts.values
    values["requests"] = 1
    values["call_errors"] = int(call.status != LLMCallStatus.SUCCEEDED.value)
    for kind in TOKEN_KINDS:
        values[kind] = getattr(call, kind)
    values["total_tokens"] = call.prompt_tokens + call.completion_tokens
    values["unknown_price_calls"] = int(not call.cost_known)
    values["estimated_calls"] = int(call.usage_source == UsageSource.ESTIMATED.value)
    values["latency_ms_sum"] = call.latency_ms
    values[f"latency_h{bucket_of(call.latency_ms)}"] = 1
    if call.time_to_first_token_ms is not None:
        values["ttft_count"] = 1
        values["ttft_ms_sum"] = call.time_to_first_token_ms
        values[f"ttft_h{bucket_of(call.time_to_first_token_ms)}"] = 1
    counts.cost = call.cost if call.cost_known else Decimal(0)
    return counts


# --- reading the rows an execution's rollup is made of -------------------------------------

_CALL_COLUMNS = (
    LLMCall.execution_id,
    LLMCall.provider,
    LLMCall.model,
    LLMCall.prompt_tokens,
    LLMCall.completion_tokens,
    LLMCall.cached_tokens,
    LLMCall.reasoning_tokens,
    LLMCall.cost,
    LLMCall.cost_known,
    LLMCall.currency,
    LLMCall.usage_source,
    LLMCall.latency_ms,
    LLMCall.time_to_first_token_ms,
    LLMCall.status,
)


async def calls_of(
    session: AsyncSession, execution_ids: Sequence[str]
) -> dict[str, list[CallFacts]]:
    """The LLM calls of these executions, in the order they were made."""
    calls: dict[str, list[CallFacts]] = defaultdict(list)
    if not execution_ids:
        return calls
    rows = await session.execute(
        select(*_CALL_COLUMNS)
        .where(LLMCall.execution_id.in_(execution_ids))
        .order_by(LLMCall.created_at, LLMCall.id)
    )
    for execution_id, *values in rows:
        calls[execution_id].append(CallFacts(*values))
    return calls


async def tool_counts(session: AsyncSession, execution_ids: Sequence[str]) -> dict[str, int]:
    if not execution_ids:
        return {}
    rows = await session.execute(
        select(ToolInvocation.execution_id, func.count())
        .where(ToolInvocation.execution_id.in_(execution_ids))
        .group_by(ToolInvocation.execution_id)
    )
    return {execution_id: count for execution_id, count in rows}


def facts_of(
    execution: WorkflowExecution, *, status: str, finished_at: datetime, tool_calls: int
) -> ExecutionFacts:
    """An execution as it closed (the close passes its new status and end, which the
    loaded row does not have yet; a rebuild passes the stored ones)."""
    return ExecutionFacts(
        execution_id=execution.id,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        workflow=execution.workflow_name,
        status=status,
        finished_at=finished_at,
        provider=execution.provider,
        model=execution.model,
        tool_calls=tool_calls,
    )


async def record_completion(session: AsyncSession, rollup: Deltas) -> None:
    """Add a closed execution to the rollups (`executions.finish_execution` made `rollup`),
    in the closing transaction, as its last write before the outbox."""
    await write_deltas(session, rollup)


# --- writing: atomic upserts with increments -----------------------------------------------


async def write_deltas(session: AsyncSession, deltas: Deltas) -> None:
    """`INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x`, rows in key order so that
    concurrent closes lock shared rows in one order (PostgreSQL) and never deadlock."""
    rollup_rows = [_row(ROLLUP_KEY, key, counts) for key, counts in sorted(deltas.rollups.items())]
    conversation_rows = [
        {**_row(CONVERSATION_DAY_KEY, key, counts), "user_id": deltas.conversation_users[key[1]]}
        for key, counts in sorted(deltas.conversations.items())
    ]
    everyone_rows = [
        _row(ROLLUP_ALL_KEY, key, counts) for key, counts in sorted(deltas.everyone().items())
    ]
    # Always this table order too: per-user rows, everyone's, users' days, conversations'.
    await _upsert(session, usage_rollups, ROLLUP_KEY, ROLLUP_COUNTS, rollup_rows)
    user_rows = [
        _row(USER_DAY_KEY, key, counts) for key, counts in sorted(deltas.user_days().items())
    ]
    await _upsert(session, usage_rollups_all, ROLLUP_ALL_KEY, ROLLUP_COUNTS, everyone_rows)
    await _upsert(session, user_usage_days, USER_DAY_KEY, USER_DAY_COUNTS, user_rows)
    await _upsert(
        session,
        conversation_usage_days,
        CONVERSATION_DAY_KEY,
        CONVERSATION_DAY_COUNTS,
        conversation_rows,
    )


def _row(key_names: Sequence[str], key: tuple[Any, ...], counts: Counts) -> dict[str, Any]:
    return {**dict(zip(key_names, key, strict=True)), **counts.values, "cost": counts.cost}


async def _upsert(
    session: AsyncSession,
    table: Table,
    key_names: Sequence[str],
    count_names: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    if not rows:
        return
    extra = tuple(name for name in rows[0] if name not in (*key_names, *count_names, "cost"))
    names = (*key_names, *extra, *count_names, "cost")
    statement = _upsert_statement(
        session.get_bind().dialect.name, table, tuple(key_names), tuple(count_names)
    )
    # One statement executed for many rows (executemany), the rows sent in one batch.
    await session.execute(statement, [{name: row.get(name, 0) for name in names} for row in rows])


@functools.cache
def _upsert_statement(
    dialect: str, table: Table, key_names: tuple[str, ...], count_names: tuple[str, ...]
) -> Any:
    """Built once per table and dialect: building it (an `excluded` alias of some fifty
    columns) and computing its cache key cost milliseconds on every close."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    increments = {name: table.c[name] + statement.excluded[name] for name in (*count_names, "cost")}
    return statement.on_conflict_do_update(index_elements=list(key_names), set_=increments)


async def delete_minutes_before(session: AsyncSession, cutoff: datetime) -> int:
    deleted = 0
    for table in (usage_rollups, usage_rollups_all):
        result = await session.execute(
            delete(table).where(table.c.granularity == "minute", table.c.bucket < cutoff)
        )
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


async def delete_conversation(session: AsyncSession, conversation_id: str) -> None:
    await session.execute(
        delete(conversation_usage_days).where(
            conversation_usage_days.c.conversation_id == conversation_id
        )
    )

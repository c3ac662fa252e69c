"""Recomputing the analytics rollups from the raw rows (executions and their LLM calls), and
comparing them with what the closes wrote. Both use `Deltas.add_execution`, the function
the live close uses, so "expected" means exactly what the closes should have written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.storage import rollups
from chatter.storage.models import WorkflowExecution
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

BATCH = 2000  # executions read per query


@dataclass(frozen=True)
class Difference:
    table: str
    key: tuple[Any, ...]
    column: str
    stored: Any
    expected: Any


async def rolled_up_days(session: AsyncSession, since: datetime) -> list[datetime]:
    """The UTC days, from `since`'s on, that have rollups or finished executions."""
    stored = await session.scalars(
        select(usage_rollups.c.bucket)
        .where(usage_rollups.c.granularity == "day", usage_rollups.c.bucket >= since)
        .distinct()
    )
    return sorted(set(stored) | set(await finished_days(session, since)))


async def finished_days(session: AsyncSession, since: datetime) -> list[datetime]:
    """The UTC days, from `since`'s on, in which some execution finished."""
    first = await session.scalar(
        select(WorkflowExecution.finished_at)
        .where(WorkflowExecution.finished_at >= since)
        .order_by(WorkflowExecution.finished_at)
        .limit(1)
    )
    last = await session.scalar(
        select(WorkflowExecution.finished_at)
        .where(WorkflowExecution.finished_at >= since)
        .order_by(WorkflowExecution.finished_at.desc())
        .limit(1)
    )
    if first is None or last is None:
        return []
    day, end = rollups.bucket_start(first, "day"), rollups.bucket_start(last, "day")
    days = []
    while day <= end:
        days.append(day)
        day += timedelta(days=1)
    return days


async def expected_deltas(
    session: AsyncSession, start: datetime, end: datetime, minutes_from: datetime
) -> rollups.Deltas:
    """What the closes of executions finished in [start, end) should have rolled up
    (minute buckets before `minutes_from` are left out: retention removed them)."""
    deltas = rollups.Deltas()
    async for batch in _finished_batches(session, start, end):
        ids = [execution.id for execution in batch]
        calls = await rollups.calls_of(session, ids)
        tools = await rollups.tool_counts(session, ids)
        for execution in batch:
            assert execution.finished_at is not None  # selected by finished_at
            facts = rollups.facts_of(
                execution,
                status=execution.status,
                finished_at=execution.finished_at,
                tool_calls=tools.get(execution.id, 0),
            )
            deltas.add_execution(facts, calls.get(execution.id, []))
    for key in [k for k in deltas.rollups if k[0] == "minute" and k[1] < minutes_from]:
        del deltas.rollups[key]
    return deltas


async def _finished_batches(
    session: AsyncSession, start: datetime, end: datetime
) -> AsyncIterator[list[WorkflowExecution]]:
    after: tuple[datetime, str] | None = None
    while True:
        query = (
            select(WorkflowExecution)
            .where(WorkflowExecution.finished_at >= start, WorkflowExecution.finished_at < end)
            .order_by(WorkflowExecution.finished_at, WorkflowExecution.id)
            .limit(BATCH)
        )
        if after is not None:
            query = query.where(
                (WorkflowExecution.finished_at > after[0])
                | ((WorkflowExecution.finished_at == after[0]) & (WorkflowExecution.id > after[1]))
            )
        batch = list(await session.scalars(query))
        if not batch:
            return
        yield batch
        last = batch[-1]
        assert last.finished_at is not None
        after = (last.finished_at, last.id)


async def rebuild_day(session: AsyncSession, day: datetime, minutes_from: datetime) -> int:
    """Replace one UTC day's rollups with what its executions add up to. Concurrent closes
    wait for this transaction (the table lock on PostgreSQL; SQLite has one writer), so
    none is lost or counted twice. Returns the executions rolled up. The caller commits."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text(
                "LOCK TABLE usage_rollups, usage_rollups_all, user_usage_days,"
                " conversation_usage_days IN SHARE ROW EXCLUSIVE MODE"
            )
        )
    end = day + timedelta(days=1)
    for table in (usage_rollups, usage_rollups_all):
        await session.execute(delete(table).where(table.c.bucket >= day, table.c.bucket < end))
    for days in (user_usage_days, conversation_usage_days):
        await session.execute(delete(days).where(days.c.day >= day, days.c.day < end))
    deltas = await expected_deltas(session, day, end, minutes_from)
    await rollups.write_deltas(session, deltas)
    return deltas.totals().values.get("executions", 0)


async def compare(
    session: AsyncSession, since: datetime, minutes_from: datetime, until: datetime
) -> list[Difference]:
    """Differences between the stored rollups of [since, until) (day starts) and what the
    executions finished in it add up to."""
    expected = await expected_deltas(session, since, until, minutes_from)
    tables: list[tuple[Table, tuple[str, ...], tuple[str, ...], dict[Any, rollups.Counts]]] = [
        (usage_rollups, ROLLUP_KEY, ROLLUP_COUNTS, expected.rollups),
        (usage_rollups_all, ROLLUP_ALL_KEY, ROLLUP_COUNTS, expected.everyone()),
        (user_usage_days, USER_DAY_KEY, USER_DAY_COUNTS, expected.user_days()),
        (
            conversation_usage_days,
            CONVERSATION_DAY_KEY,
            CONVERSATION_DAY_COUNTS,
            expected.conversations,
        ),
    ]
    differences: list[Difference] = []
    for table, key_names, count_names, wanted in tables:
        stored = await _stored(session, table, key_names, count_names, since, until, minutes_from)
        differences += _diff(table.name, stored, wanted, count_names)
    return differences


async def _stored(
    session: AsyncSession,
    table: Table,
    key_names: tuple[str, ...],
    count_names: tuple[str, ...],
    since: datetime,
    until: datetime,
    minutes_from: datetime,
) -> dict[tuple[Any, ...], rollups.Counts]:
    rollup = "granularity" in table.c
    time_column = table.c.bucket if rollup else table.c.day
    query = select(table).where(time_column >= since, time_column < until)
    if rollup:
        query = query.where((table.c.granularity != "minute") | (table.c.bucket >= minutes_from))
    stored: dict[tuple[Any, ...], rollups.Counts] = {}
    for row in await session.execute(query):
        mapping = row._mapping
        counts = rollups.Counts()
        for name in count_names:
            if mapping[name]:
                counts.values[name] = int(mapping[name])
        counts.cost = Decimal(mapping["cost"] or 0)
        stored[tuple(mapping[name] for name in key_names)] = counts
    return stored


def _diff(
    table: str,
    stored: dict[tuple[Any, ...], rollups.Counts],
    expected: dict[tuple[Any, ...], rollups.Counts],
    count_names: tuple[str, ...],
) -> list[Difference]:
    differences = []
    for key in sorted(set(stored) | set(expected), key=repr):
        have = stored.get(key, rollups.Counts())
        want = expected.get(key, rollups.Counts())
        for name in count_names:
            if have.values.get(name, 0) != want.values.get(name, 0):
                differences.append(
                    Difference(table, key, name, have.values.get(name, 0), want.values.get(name, 0))
                )
        if have.cost != want.cost:
            differences.append(Difference(table, key, "cost", have.cost, want.cost))
    return differences

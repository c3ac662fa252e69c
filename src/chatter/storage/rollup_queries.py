"""Reading the analytics rollups. A range is covered by the coarsest buckets that fit in
it (days in the middle, hours and minutes at the edges), so a month's summary reads a few
dozen rows per key whatever the number of calls behind them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.storage.models import Conversation, User
from chatter.storage.rollup_tables import (
    ROLLUP_COUNTS,
    conversation_usage_days,
    usage_rollups,
    usage_rollups_all,
    user_usage_days,
)
from chatter.storage.rollups import bucket_start, bucket_step

GROUP_COLUMNS = {
    "provider": "provider",
    "model": "model",
    "user": "user_id",
    "workflow": "workflow",
}
SERIES_COUNTS = (
    "requests",
    "executions",
    "errors",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "unknown_price_calls",
    "tool_calls",
)


@dataclass(frozen=True)
class Segment:
    granularity: str
    start: datetime
    end: datetime


def _ceil(moment: datetime, granularity: str) -> datetime:
    floor = bucket_start(moment, granularity)
    return floor if floor == moment else floor + bucket_step(granularity)


def covering_segments(start: datetime, end: datetime, minutes_from: datetime) -> list[Segment]:
    """[start, end) widened to whole minutes (to whole hours where minute buckets have
    been cleaned up), as day, hour and minute segments that do not overlap."""
    low, high = bucket_start(start, "minute"), _ceil(end, "minute")
    if low < minutes_from:
        low = bucket_start(low, "hour")
    if high <= minutes_from:
        high = _ceil(high, "hour")
    if low >= high:
        return []
    hour_low, hour_high = _ceil(low, "hour"), bucket_start(high, "hour")
    if hour_low >= hour_high:
        return [Segment("minute", low, high)]
    segments = [Segment("minute", low, hour_low), Segment("minute", hour_high, high)]
    day_low, day_high = _ceil(hour_low, "day"), bucket_start(hour_high, "day")
    if day_low >= day_high:
        segments.append(Segment("hour", hour_low, hour_high))
    else:
        segments += [
            Segment("hour", hour_low, day_low),
            Segment("hour", day_high, hour_high),
            Segment("day", day_low, day_high),
        ]
    return [segment for segment in segments if segment.start < segment.end]


def _source(user_id: str | None, by_user: bool = False) -> Table:
    """Everyone's figures come from the table summed over users (a few rows per bucket),
    unless they are broken down by user."""
    return usage_rollups_all if user_id is None and not by_user else usage_rollups


def _covered(
    segments: Sequence[Segment], user_id: str | None, source: Table
) -> ColumnElement[bool]:
    """One range per segment, the user (when scoped) inside each: every segment is then an
    index range scan - (granularity, bucket, ...) or (user_id, granularity, bucket) -
    instead of a filter over all of a user's rows since the beginning."""
    table = source.c
    clauses = []
    for segment in segments:
        terms = [
            table.granularity == segment.granularity,
            table.bucket >= segment.start,
            table.bucket < segment.end,
        ]
        if user_id is not None:
            terms.insert(0, table.user_id == user_id)
        clauses.append(and_(*terms))
    return or_(*clauses) if clauses else false()


def _sums(names: Sequence[str], source: Table) -> list[Any]:
    return [func.coalesce(func.sum(source.c[name]), 0).label(name) for name in names] + [
        func.coalesce(func.sum(source.c.cost), 0).label("cost")
    ]


async def totals_by_currency(
    session: AsyncSession, segments: Sequence[Segment], user_id: str | None
) -> dict[str, dict[str, Any]]:
    """Every count summed over the range, per currency."""
    source = _source(user_id)
    query = (
        select(source.c.currency, *_sums(ROLLUP_COUNTS, source))
        .where(_covered(segments, user_id, source))
        .group_by(source.c.currency)
    )
    return {row.currency: values_of(row._mapping) for row in await session.execute(query)}


async def top(
    session: AsyncSession,
    segments: Sequence[Segment],
    user_id: str | None,
    by: Sequence[str],
    limit: int,
) -> list[dict[str, Any]]:
    """The keys `by` (columns of usage_rollups) that cost most, then used most tokens."""
    source = _source(user_id, by_user="user_id" in by)
    columns = [source.c[name] for name in (*by, "currency")]
    query = (
        select(*columns, *_sums(("requests", "total_tokens"), source))
        .where(_covered(segments, user_id, source))
        .group_by(*columns)
        .order_by(func.sum(source.c.cost).desc(), func.sum(source.c.total_tokens).desc())
        .limit(limit)
    )
    return [values_of(row._mapping) for row in await session.execute(query)]


async def users(
    session: AsyncSession, start: datetime, end: datetime, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The users who spent most (with their email), and how many users ran anything, by
    the days that [start, end) touches: one row per user and day."""
    table = user_usage_days.c
    columns = [table.user_id, table.currency]
    query = (
        select(
            *columns,
            *[func.sum(table[name]).label(name) for name in ("requests", "total_tokens")],
            func.sum(table.executions).label("executions"),
            func.sum(table.cost).label("cost"),
        )
        .where(table.day >= bucket_start(start, "day"), table.day < end)
        .group_by(*columns)
    )
    rows = [values_of(row._mapping) for row in await session.execute(query)]
    active = len({row["user_id"] for row in rows if row["executions"]})
    rows.sort(key=lambda row: (row["cost"], row["total_tokens"]), reverse=True)
    top = rows[:limit]
    emails = dict(
        (
            await session.execute(
                select(User.id, User.email).where(User.id.in_([r["user_id"] for r in top]))
            )
        ).all()
    )
    return [{**row, "email": emails.get(row["user_id"])} for row in top], active


async def top_conversations(
    session: AsyncSession, start: datetime, end: datetime, user_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """By day buckets: the days that [start, end) touches."""
    table = conversation_usage_days.c
    query = (
        select(
            table.conversation_id,
            table.currency,
            func.sum(table.requests).label("requests"),
            func.sum(table.total_tokens).label("total_tokens"),
            func.sum(table.cost).label("cost"),
            Conversation.title,
        )
        .join(Conversation, Conversation.id == table.conversation_id, isouter=True)
        .where(table.day >= bucket_start(start, "day"), table.day < end)
        .group_by(table.conversation_id, table.currency, Conversation.title)
        .order_by(func.sum(table.cost).desc(), func.sum(table.total_tokens).desc())
        .limit(limit)
    )
    if user_id is not None:
        query = query.where(table.user_id == user_id)
    return [values_of(row._mapping) for row in await session.execute(query)]


async def series(
    session: AsyncSession,
    granularity: str,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
    user_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    source = _source(user_id, by_user="user" in group_by)
    groups = [source.c[GROUP_COLUMNS[name]].label(name) for name in group_by]
    keys = [source.c.bucket, *groups, source.c.currency]
    query = select(*keys, *_sums(SERIES_COUNTS, source)).where(
        source.c.granularity == granularity,
        source.c.bucket >= bucket_start(start, granularity),
        source.c.bucket < end,
    )
    if user_id is not None:
        query = query.where(source.c.user_id == user_id)
    query = query.group_by(*keys).order_by(*keys).limit(limit)
    return [values_of(row._mapping) for row in await session.execute(query)]


def values_of(mapping: Any) -> dict[str, Any]:
    values = dict(mapping)
    values["cost"] = _money(values.get("cost"))
    return values


def _money(value: Decimal | None) -> Decimal:
    """SUM keeps the Money column type (so SQLite's scaled integer is already a Decimal);
    only a sum over no rows is NULL."""
    return value if value is not None else Decimal(0)

"""Analytics read from the rollups every execution's close writes (storage/rollups.py):
summaries, time series and per-conversation figures, owner-scoped; plus the upkeep of the
rollups (minute retention, rebuild, check)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.domain.enums import UserRole
from chatter.domain.histogram import BUCKETS, percentile
from chatter.errors import Forbidden, Unprocessable
from chatter.events.periodic import every
from chatter.observability.logging import get_logger
from chatter.services.conversations import ConversationService
from chatter.settings import AnalyticsSettings
from chatter.storage import rollup_queries, rollup_rebuild, rollups
from chatter.storage.models import LLMCall, User, WorkflowExecution
from chatter.storage.rollup_tables import conversation_usage_days

log = get_logger("chatter.analytics")
GRANULARITIES = ("minute", "hour", "day")
GROUP_KEYS = tuple(rollup_queries.GROUP_COLUMNS)
# The longest range each granularity answers: enough points for a chart, never millions.
MAX_RANGE = {"minute": timedelta(hours=48), "hour": timedelta(days=93), "day": timedelta(days=3660)}
MAX_POINTS = 10_000  # per series answer: a chart's worth, never the whole table
ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
TOKEN_NAMES = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime


class AnalyticsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: AnalyticsSettings,
        conversations: ConversationService,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._conversations = conversations
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- reading ------------------------------------------------------------------------

    async def summary(
        self,
        *,
        session: AsyncSession,
        user: User,
        start: datetime | None,
        end: datetime | None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        scope = _scope(user, user_id)
        period = _range(start or ALL_TIME, end or utcnow(), None)
        segments = rollup_queries.covering_segments(period.start, period.end, self.minutes_from())
        by_currency = await rollup_queries.totals_by_currency(session, segments, scope)
        totals = _merge_counts(by_currency.values())
        currency = _main_currency(by_currency)
        top_n = self._settings.top_n
        summary: dict[str, Any] = {
            "start": period.start,
            "end": period.end,
            "currency": currency,
            **{name: totals.get(name, 0) for name in _SUMMARY_COUNTS},
            "total_tokens": totals.get("total_tokens", 0),
            "error_rate": _rate(totals.get("errors", 0), totals.get("executions", 0)),
            "cost": by_currency.get(currency, {}).get("cost", Decimal(0)),
            "costs": {name: values["cost"] for name, values in by_currency.items()},
            "latency_p50_ms": _percentile(totals, "latency", 0.5),
            "latency_p95_ms": _percentile(totals, "latency", 0.95),
            "ttft_p50_ms": _percentile(totals, "ttft", 0.5),
            "ttft_p95_ms": _percentile(totals, "ttft", 0.95),
            "top_models": await rollup_queries.top(
                session, segments, scope, ("provider", "model"), top_n
            ),
            "top_conversations": await rollup_queries.top_conversations(
                session, period.start, period.end, scope, top_n
            ),
            "top_users": None,
            "active_users": None,
        }
        if user.role == UserRole.ADMIN.value and scope is None:
            top_users, active = await rollup_queries.users(session, period.start, period.end, top_n)
            summary["top_users"], summary["active_users"] = top_users, active
        await session.commit()
        return summary

    async def usage(
        self,
        *,
        session: AsyncSession,
        user: User,
        start: datetime | None,
        end: datetime | None,
        granularity: str,
        group_by: Sequence[str],
        user_id: str | None = None,
    ) -> dict[str, Any]:
        scope = _scope(user, user_id)
        if granularity not in GRANULARITIES:
            raise Unprocessable(
                f"granularity must be one of {', '.join(GRANULARITIES)}.",
                details={"granularity": granularity},
            )
        unknown = [key for key in group_by if key not in GROUP_KEYS]
        if unknown:
            raise Unprocessable(
                f"Unknown group_by keys: {', '.join(unknown)}; use {', '.join(GROUP_KEYS)}.",
                details={"unknown": unknown, "allowed": list(GROUP_KEYS)},
            )
        end = _aware(end or utcnow())
        period = _range(start or end - timedelta(hours=24), end, granularity)
        points = await rollup_queries.series(
            session,
            granularity,
            period.start,
            period.end,
            list(dict.fromkeys(group_by)),
            scope,
            MAX_POINTS + 1,
        )
        if len(points) > MAX_POINTS:
            raise Unprocessable(
                f"More than {MAX_POINTS} points: narrow the range, use a coarser granularity "
                "or fewer group_by keys.",
                details={"max_points": MAX_POINTS},
            )
        await session.commit()
        for point in points:
            if "user" in point:
                point["user_id"] = point.pop("user")
        return {
            "start": period.start,
            "end": period.end,
            "granularity": granularity,
            "group_by": list(dict.fromkeys(group_by)),
            "currency": _main_currency({p["currency"]: p for p in points}),
            "points": points,
        }

    async def conversation(
        self, *, session: AsyncSession, user: User, conversation_id: str, correlation_id: str
    ) -> dict[str, Any]:
        """One conversation's usage: its totals (the conversation row), by model, by day."""
        conversation = await self._conversations.get_owned(
            session=session,
            user=user,
            conversation_id=conversation_id,
            correlation_id=correlation_id,
        )
        by_model = await session.execute(
            select(
                LLMCall.provider,
                LLMCall.model,
                LLMCall.currency,
                func.count(LLMCall.id).label("requests"),
                *[func.coalesce(func.sum(getattr(LLMCall, n)), 0).label(n) for n in TOKEN_NAMES],
                func.coalesce(func.sum(LLMCall.total_tokens), 0).label("total_tokens"),
                func.coalesce(func.sum(LLMCall.cost), 0).label("cost"),
            )
            .join(WorkflowExecution, WorkflowExecution.id == LLMCall.execution_id)
            .where(WorkflowExecution.conversation_id == conversation.id)
            .group_by(LLMCall.provider, LLMCall.model, LLMCall.currency)
            .order_by(func.sum(LLMCall.cost).desc())
        )
        statuses = await session.execute(
            select(WorkflowExecution.status, func.count(WorkflowExecution.id))
            .where(WorkflowExecution.conversation_id == conversation.id)
            .group_by(WorkflowExecution.status)
        )
        days = conversation_usage_days.c
        daily = await session.execute(
            select(days.day, days.currency, days.requests, days.total_tokens, days.cost)
            .where(days.conversation_id == conversation.id)
            .order_by(days.day)
        )
        result = {
            "conversation_id": conversation.id,
            "title": conversation.title,
            "currency": rollups.DEFAULT_CURRENCY,
            "message_count": conversation.message_count,
            **{name: getattr(conversation, name) for name in (*TOKEN_NAMES, "total_tokens")},
            "cost": conversation.total_cost,
            "executions": {status: count for status, count in statuses},
            "by_model": [rollup_queries.values_of(row._mapping) for row in by_model],
            "by_day": [rollup_queries.values_of(row._mapping) for row in daily],
        }
        await session.commit()
        return result

    # --- upkeep -------------------------------------------------------------------------

    def minutes_from(self) -> datetime:
        """Minute buckets older than this are cleaned up; ranges there resolve to hours."""
        return rollups.bucket_start(
            utcnow() - timedelta(hours=self._settings.minute_retention_hours), "hour"
        ) + timedelta(hours=1)

    async def cleanup_once(self) -> int:
        async with self._sessions() as session:
            deleted = await rollups.delete_minutes_before(session, self.minutes_from())
            await session.commit()
        if deleted:
            log.info("analytics_minutes_cleaned_up", rows=deleted)
        return deleted

    async def rebuild(
        self, since: datetime, on_day: Callable[[datetime, int, int], None] | None = None
    ) -> int:
        """Recompute the rollups of every day from `since`'s on, one transaction a day, while
        the server runs. Returns the executions rolled up."""
        async with self._sessions() as session:
            days = await rollup_rebuild.finished_days(session, rollups.bucket_start(since, "day"))
            await session.commit()
        done = 0
        for index, day in enumerate(days):
            async with self._sessions() as session:
                done += await rollup_rebuild.rebuild_day(session, day, self.minutes_from())
                await session.commit()
            if on_day is not None:
                on_day(day, index + 1, len(days))
        return done

    async def check(self, since: datetime) -> list[rollup_rebuild.Difference]:
        """Day by day (one read transaction each), so memory stays bounded by one day."""
        async with self._sessions() as session:
            days = await rollup_rebuild.rolled_up_days(session, rollups.bucket_start(since, "day"))
            await session.commit()
        differences: list[rollup_rebuild.Difference] = []
        for day in days:
            async with self._sessions() as session:
                differences += await rollup_rebuild.compare(
                    session, day, self.minutes_from(), day + timedelta(days=1)
                )
                await session.commit()
        return differences

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._cleanup_loop())

    async def aclose(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _cleanup_loop(self) -> None:
        await every(
            self._settings.cleanup_interval_s,
            self.cleanup_once,
            self._stopping,
            failure="analytics_cleanup_failed",
        )


_SUMMARY_COUNTS = (
    "requests",
    "executions",
    "errors",
    "cancelled",
    "call_errors",
    *TOKEN_NAMES,
    "unknown_price_calls",
    "estimated_calls",
    "tool_calls",
)


def _scope(user: User, user_id: str | None) -> str | None:
    """Whose rollups to read: None means everyone's (admins only)."""
    if user.role == UserRole.ADMIN.value:
        return user_id
    if user_id is not None and user_id != user.id:
        raise Forbidden("Only admins may read another user's analytics.")
    return user.id


def _range(start: datetime, end: datetime, granularity: str | None) -> Range:
    start, end = _aware(start), _aware(end)
    if start >= end:
        raise Unprocessable(
            "start must be before end.",
            details={"start": start.isoformat(), "end": end.isoformat()},
        )
    if granularity is not None and end - start > MAX_RANGE[granularity]:
        limit = MAX_RANGE[granularity]
        raise Unprocessable(
            f"A {granularity} series covers at most {limit}; use a coarser granularity.",
            details={"granularity": granularity, "max_range_seconds": limit.total_seconds()},
        )
    return Range(start, end)


def _aware(moment: datetime) -> datetime:
    """Naive times are read as UTC. Times outside 1970-9000 are refused: nothing is
    recorded there, and bucket arithmetic near year 9999 would overflow."""
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        moment = datetime.max.replace(tzinfo=UTC)  # not representable in UTC: refused below
    if not ALL_TIME <= moment <= LATEST:
        raise Unprocessable(
            "Times must lie between 1970-01-01 and 9000-01-01 (UTC).",
            details={"time": moment.isoformat(), "earliest": ALL_TIME.isoformat()},
        )
    return moment


def _merge_counts(rows: Any) -> dict[str, int]:
    merged: dict[str, int] = {}
    for row in rows:
        for name, value in row.items():
            if name not in ("cost", "currency"):
                merged[name] = merged.get(name, 0) + int(value or 0)
    return merged


def _main_currency(by_currency: dict[str, Any]) -> str:
    """The currency most of the money is in (USD when there is none)."""
    if not by_currency:
        return rollups.DEFAULT_CURRENCY
    return max(by_currency, key=lambda name: (by_currency[name].get("cost", 0), name))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _percentile(totals: dict[str, int], prefix: str, quantile: float) -> float | None:
    return percentile([totals.get(f"{prefix}_h{i}", 0) for i in range(BUCKETS)], quantile)

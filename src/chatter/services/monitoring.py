"""Workflow monitoring: a live view fed by the event bus, and statistics over a window.

The view subscribes to the bus (never called from the services it watches): each turn's
`workflow_started`, `llm_call_completed`, `tool_called` and closing events, and the
security events, which it counts by type. Delivery is at least once: events are
deduplicated by id. The database stays the source of truth; the API reads it (see
`get_workflow_stats`), so nothing is lost to a restart or to a subscriber that lagged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.domain.enums import UserRole
from chatter.domain.events import EventCategory, EventType, UnifiedEvent
from chatter.domain.ids import is_valid_id
from chatter.domain.monitoring import (
    CallSample,
    StatsWindow,
    ToolSample,
    UsageTotals,
    WorkflowMetrics,
    WorkflowStats,
)
from chatter.errors import BadRequest, Forbidden
from chatter.events.bus import EventBus, Subscription
from chatter.observability.logging import get_logger
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.services.workflow_tracker import WorkflowTracker
from chatter.settings import MonitoringSettings
from chatter.storage import monitoring as store
from chatter.storage.models import User

log = get_logger("chatter.monitoring")
StatsSource = Literal["auto", "live", "database"]
_FINISHED = {
    EventType.WORKFLOW_COMPLETED,
    EventType.WORKFLOW_FAILED,
    EventType.WORKFLOW_CANCELLED,
}


class MonitoringService:
    def __init__(
        self,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        settings: MonitoringSettings,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._settings = settings
        self.tracker = WorkflowTracker(settings, started_at=utcnow())
        self._task: asyncio.Task[None] | None = None
        self._handlers: dict[EventType, Callable[[UnifiedEvent], object]] = {
            EventType.WORKFLOW_STARTED: self._on_started,
            EventType.LLM_CALL_COMPLETED: self._on_llm_call,
            EventType.TOOL_CALLED: self._on_tool,
            **dict.fromkeys(_FINISHED, self._on_finished),
        }

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe now (before returning), so every event published later is seen."""
        subscription = self._bus.subscribe(self._settings.queue_size)
        self._task = asyncio.create_task(self._consume(subscription))

    async def aclose(self) -> None:
        # No I/O happens in the loop: cancelling it loses nothing but queued events,
        # which are in the database.
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _consume(self, subscription: Subscription) -> None:
        with subscription:
            while True:
                event = await subscription.get()
                if subscription.lagged:
                    # The view misses events; the API reads the database, so stats stay whole.
                    log.warning("monitoring_subscriber_lagged")
                    subscription.lagged = False
                self.handle(event)

    def handle(self, event: UnifiedEvent) -> None:
        """Apply one event to the view, once per event id."""
        if not self.tracker.first_sight(event.id):
            return
        try:
            if event.category is EventCategory.SECURITY:
                self.tracker.count_security(event.type.value, event.created_at)
            handler = self._handlers.get(event.type)
            if handler is not None and event.execution_id is not None:
                handler(event)
        except Exception:  # a malformed event must not stop the view: log it and go on
            log.exception("monitoring_event_failed", event_id=event.id, type=event.type.value)

    # -- the Python API ---------------------------------------------------------------

    def start_workflow_tracking(
        self,
        *,
        execution_id: str,
        workflow: str,
        user_id: str | None,
        conversation_id: str | None = None,
        correlation_id: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        started_at: datetime | None = None,
    ) -> str:
        metrics = WorkflowMetrics(
            execution_id=execution_id,
            workflow=workflow,
            user_id=user_id,
            conversation_id=conversation_id,
            correlation_id=correlation_id,
            started_at=started_at or utcnow(),
        )
        metrics.add_name(metrics.providers, provider or "")
        metrics.add_name(metrics.models, model or "")
        return self.tracker.start(metrics).execution_id

    def update_workflow_metrics(
        self,
        execution_id: str,
        *,
        token_usage: UsageTotals | None = None,
        llm_call: CallSample | None = None,
        tool_call: ToolSample | None = None,
        error: str | None = None,
        node: str | None = None,
        node_ms: int = 0,
    ) -> WorkflowMetrics:
        """Add what happened to a tracked execution. `token_usage` adds to its totals
        without a model call (the by-provider groups count model calls only)."""
        metrics = self.tracker.get(execution_id)
        if metrics is None:
            raise KeyError(execution_id)
        if token_usage is not None:
            totals = metrics.totals()
            totals.add(token_usage)
            metrics.set_totals(totals)
        if llm_call is not None:
            metrics.record_call(llm_call)
        if tool_call is not None:
            metrics.record_tool(tool_call)
        if error is not None:
            metrics.add_error(error)
        if node is not None:
            metrics.add_node_time(node, node_ms)
        return metrics

    def finish_workflow_tracking(
        self,
        execution_id: str,
        *,
        status: str,
        finished_at: datetime | None = None,
        duration_ms: int | None = None,
        error: str | None = None,
        totals: UsageTotals | None = None,
    ) -> WorkflowMetrics:
        """Close a tracked execution. `totals` (the closed row's, carried by the closing
        event) replace the sums of the calls seen, in case a call's event was missed."""
        metrics = self.tracker.get(execution_id)
        if metrics is None:
            raise KeyError(execution_id)
        if metrics.finished:
            return metrics
        metrics.status = status
        metrics.finished_at = finished_at or utcnow()
        metrics.duration_ms = (
            duration_ms
            if duration_ms is not None
            else int((metrics.finished_at - metrics.started_at) / timedelta(milliseconds=1))
        )
        if error is not None:
            metrics.add_error(error)
        if totals is not None:
            metrics.set_totals(replace(totals, cost_known=metrics.cost_known))
        return self.tracker.finish(metrics)

    async def get_workflow_stats(
        self,
        *,
        window: StatsWindow | timedelta = StatsWindow.HOUR_1,
        user_id: str | None = None,
        source: StatsSource = "auto",
        now: datetime | None = None,
    ) -> WorkflowStats:
        """Executions started in the last `window` (one user's, or everyone's).

        `auto` answers from memory when the live view holds every execution of the
        window (the process ran for the whole window and dropped none from its ring),
        else from the database; `live` and `database` force one."""
        span = window.span if isinstance(window, StatsWindow) else window
        now = now or utcnow()
        since = now - span
        if source == "live" or (source == "auto" and self.tracker.covers(since)):
            return self.tracker.stats(window=span, now=now, user_id=user_id)
        async with self._sessions() as session:
            stats = await store.window_stats(
                session,
                user_id=user_id,
                until=now,
                window=span,
                ops_limit=self._settings.stats_recent_ops,
                sample_limit=self._settings.stats_sample_limit,
                with_security=user_id is None,
            )
            await session.commit()
        return stats

    # -- the HTTP API -----------------------------------------------------------------

    def scope(self, user: User, user_id: str | None) -> str | None:
        """Whose executions `user` reads: admins anyone's (None: everyone's), others their
        own; a user naming someone else is refused rather than silently narrowed."""
        if user.role == UserRole.ADMIN.value:
            return user_id
        if user_id is not None and user_id != user.id:
            raise Forbidden("Only admins may read another user's executions.")
        return user.id

    async def list_workflows(
        self,
        *,
        session: AsyncSession,
        user: User,
        filters: WorkflowFilters,
        limit: int,
        cursor: str | None,
    ) -> Page[WorkflowMetrics]:
        """Executions newest first, each with its metrics, read from the database."""
        query = store.ExecutionQuery(
            user_id=self.scope(user, filters.user_id),
            status=filters.status,
            workflow=filters.workflow,
            provider=filters.provider,
            model=filters.model,
            since=filters.since,
        )
        after = _after_cursor(cursor) if cursor is not None else None
        rows = await store.execution_page(session, query, after=after, limit=limit + 1)
        items = await store.metrics_of(session, rows[:limit])
        await session.commit()  # end the read: on SQLite it holds the one connection
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([last.started_at.isoformat(), last.id])
        return Page(items=items, next_cursor=next_cursor)

    async def stats(self, *, user: User, window: StatsWindow, user_id: str | None) -> WorkflowStats:
        """The API's stats: always from the database, the source of truth."""
        return await self.get_workflow_stats(
            window=window, user_id=self.scope(user, user_id), source="database"
        )

    # -- event handlers ---------------------------------------------------------------

    def _on_started(self, event: UnifiedEvent) -> None:
        self._track(event, started_at=event.created_at)

    def _on_llm_call(self, event: UnifiedEvent) -> None:
        data = event.data
        usage = UsageTotals(
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            cached_tokens=int(data["cached_tokens"]),
            reasoning_tokens=int(data["reasoning_tokens"]),
            total_tokens=int(data["total_tokens"]),
            cost=Decimal(str(data["cost"])),
            cost_known=bool(data["cost_known"]),
        )
        call = CallSample(
            provider=str(data["provider"]),
            model=str(data["model"]),
            usage=usage,
            currency=str(data.get("currency") or "USD"),
            latency_ms=int(data.get("latency_ms") or 0),
            time_to_first_token_ms=_int_or_none(data.get("time_to_first_token_ms")),
            node=str(data.get("node") or "model"),
            status=str(data.get("status") or "succeeded"),
            error=data.get("error"),
        )
        self.update_workflow_metrics(self._track(event), llm_call=call)

    def _on_tool(self, event: UnifiedEvent) -> None:
        data = event.data
        tool = ToolSample(
            name=str(data["name"]),
            duration_ms=int(data.get("duration_ms") or 0),
            status=str(data.get("status") or "ok"),
            node=str(data.get("node") or "tools"),
        )
        self.update_workflow_metrics(self._track(event), tool_call=tool)

    def _on_finished(self, event: UnifiedEvent) -> None:
        data = event.data
        duration_ms = _int_or_none(data.get("duration_ms"))
        # A close seen without its start (published before this process subscribed, or
        # republished by the relay) is still an execution that ran: track it from here.
        started_at = event.created_at - timedelta(milliseconds=duration_ms or 0)
        execution_id = self._track(event, started_at=started_at)
        error = data.get("error")
        totals = UsageTotals(
            llm_call_count=int(data.get("llm_call_count") or 0),
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            cached_tokens=int(data.get("cached_tokens") or 0),
            reasoning_tokens=int(data.get("reasoning_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cost=Decimal(str(data.get("cost") or 0)),
        )
        self.finish_workflow_tracking(
            execution_id,
            status=str(data.get("status") or event.type.value.removeprefix("workflow_")),
            finished_at=event.created_at,
            duration_ms=duration_ms,
            error=_error_text(error) if error else data.get("reason"),
            totals=totals,
        )

    def _track(self, event: UnifiedEvent, *, started_at: datetime | None = None) -> str:
        """The execution `event` is about, tracked from now on if it was not yet."""
        assert event.execution_id is not None
        if self.tracker.get(event.execution_id) is not None:
            return event.execution_id
        return self.start_workflow_tracking(
            execution_id=event.execution_id,
            workflow=str(event.data.get("workflow") or "unknown"),
            user_id=event.user_id,
            conversation_id=event.conversation_id,
            correlation_id=event.correlation_id,
            provider=event.data.get("provider"),
            model=event.data.get("model"),
            started_at=started_at or event.created_at,
        )


@dataclass(frozen=True)
class WorkflowFilters:
    """What a reader of the execution list asked for, before authorization."""

    user_id: str | None = None
    status: str | None = None
    workflow: str | None = None
    provider: str | None = None
    model: str | None = None
    since: datetime | None = None


def _after_cursor(cursor: str) -> tuple[datetime, str]:
    started_raw, last_id = decode_cursor(cursor, 2)
    invalid = BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    if not isinstance(started_raw, str) or not isinstance(last_id, str) or not is_valid_id(last_id):
        raise invalid
    try:
        started_at = datetime.fromisoformat(started_raw)
    except ValueError as exc:
        raise invalid from exc
    if started_at.tzinfo is None:  # we only ever issue UTC timestamps with an offset
        raise invalid
    return started_at, last_id


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return str(error)

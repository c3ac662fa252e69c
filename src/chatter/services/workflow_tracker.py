"""The live monitoring view, in memory and without I/O: executions in flight, the recent
finished ones, and security events counted per minute.

Everything it holds is bounded, so it can run for months: a ring buffer of finished
executions, a capped dict of in-flight ones (the oldest dropped first), a capped set of
event ids seen (for at-least-once delivery) and one counter per minute of the longest
window for security events. What the view no longer holds is still in the database;
`covered_since` says from when the view is complete."""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from chatter.domain.monitoring import (
    Percentiles,
    StatsWindow,
    UsageGroup,
    UsageTotals,
    WorkflowMetrics,
    WorkflowStats,
)
from chatter.settings import MonitoringSettings

# Per-minute security counters covering the longest stats window.
SECURITY_MINUTES = int(StatsWindow.DAYS_7.span / timedelta(minutes=1))
_TICK = timedelta(microseconds=1)
ModelKey = tuple[str, str, str]  # provider, model, currency


class WorkflowTracker:
    def __init__(self, settings: MonitoringSettings, *, started_at: datetime) -> None:
        self._settings = settings
        self.started_at = started_at
        # Every execution started at or after this is in the view (nothing later dropped).
        self.covered_since = started_at
        self._in_flight: OrderedDict[str, WorkflowMetrics] = OrderedDict()
        self._recent: deque[WorkflowMetrics] = deque(maxlen=settings.recent_executions)
        self._recent_by_id: dict[str, WorkflowMetrics] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._security: deque[tuple[int, Counter[str]]] = deque(maxlen=SECURITY_MINUTES)

    def first_sight(self, event_id: int) -> bool:
        """True the first time an event id is seen (delivery is at least once)."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > self._settings.dedupe_ids:
            self._seen.popitem(last=False)
        return True

    def get(self, execution_id: str) -> WorkflowMetrics | None:
        return self._in_flight.get(execution_id) or self._recent_by_id.get(execution_id)

    def start(self, metrics: WorkflowMetrics) -> WorkflowMetrics:
        """Track `metrics` as in flight; an execution already known stays as it is."""
        known = self.get(metrics.execution_id)
        if known is not None:
            return known
        self._in_flight[metrics.execution_id] = metrics
        if len(self._in_flight) > self._settings.max_in_flight:
            _, dropped = self._in_flight.popitem(last=False)
            self._forget(dropped)
        return metrics

    def running(self, execution_id: str) -> WorkflowMetrics | None:
        return self._in_flight.get(execution_id)

    def finish(self, metrics: WorkflowMetrics) -> WorkflowMetrics:
        """Move a finished execution from in flight to the ring of recent ones."""
        self._in_flight.pop(metrics.execution_id, None)
        if metrics.execution_id in self._recent_by_id:
            return metrics
        if len(self._recent) == self._recent.maxlen:
            self._forget(self._recent[0])
            del self._recent_by_id[self._recent[0].execution_id]
        self._recent.append(metrics)
        self._recent_by_id[metrics.execution_id] = metrics
        return metrics

    def count_security(self, event_type: str, at: datetime) -> None:
        minute = int(at.timestamp() // 60)
        if not self._security or self._security[-1][0] < minute:
            self._security.append((minute, Counter()))
        # An event older than the newest minute (a late delivery) counts in that minute.
        self._security[-1][1][event_type] += 1

    def covers(self, since: datetime) -> bool:
        """Whether the view holds every execution started at or after `since`."""
        return since >= self.covered_since

    def stats(self, *, window: timedelta, now: datetime, user_id: str | None) -> WorkflowStats:
        since = now - window
        rows = [
            m
            for m in (*self._recent, *self._in_flight.values())
            if since <= m.started_at <= now and (user_id is None or m.user_id == user_id)
        ]
        rows.sort(key=lambda m: m.started_at, reverse=True)
        return WorkflowStats(
            window=window,
            since=since,
            until=now,
            source="live",
            workflow_ops=rows[: self._settings.stats_recent_ops],
            counts_by_status=dict(Counter(m.status for m in rows)),
            duration_ms=Percentiles.of(
                [m.duration_ms for m in rows if m.finished and m.duration_ms is not None]
            ),
            time_to_first_token_ms=Percentiles.of(
                [m.time_to_first_token_ms for m in rows if m.time_to_first_token_ms is not None]
            ),
            by_provider=_groups(rows, lambda m, key: key[0]),
            by_model=_groups(rows, lambda m, key: f"{key[0]}/{key[1]}"),
            by_workflow=_groups(rows, lambda m, key: m.workflow),
            security_events=self._security_counts(since) if user_id is None else {},
        )

    def sizes(self) -> dict[str, int]:
        """How many items each internal container holds (tests check they stay bounded)."""
        return {
            "in_flight": len(self._in_flight),
            "recent": len(self._recent),
            "recent_by_id": len(self._recent_by_id),
            "seen": len(self._seen),
            "security_minutes": len(self._security),
        }

    def _forget(self, dropped: WorkflowMetrics) -> None:
        self.covered_since = max(self.covered_since, dropped.started_at + _TICK)

    def _security_counts(self, since: datetime) -> dict[str, int]:
        first_minute = int(since.timestamp() // 60)
        total: Counter[str] = Counter()
        for minute, counts in reversed(self._security):
            if minute < first_minute:
                break
            total.update(counts)
        return dict(total)


def _groups(
    rows: Iterable[WorkflowMetrics], key_of: Callable[[WorkflowMetrics, ModelKey], str]
) -> list[UsageGroup]:
    """Usage of `rows`' model calls grouped by `key_of` and currency."""
    usage: dict[tuple[str, str], UsageTotals] = {}
    executions: dict[tuple[str, str], set[str]] = {}
    for metrics, key, totals in _model_usage(rows):
        group = (key_of(metrics, key), key[2])
        usage.setdefault(group, UsageTotals()).add(totals)
        executions.setdefault(group, set()).add(metrics.execution_id)
    return [
        UsageGroup(key, currency, len(executions[(key, currency)]), totals)
        for (key, currency), totals in sorted(usage.items())
    ]


def _model_usage(
    rows: Iterable[WorkflowMetrics],
) -> Iterator[tuple[WorkflowMetrics, ModelKey, UsageTotals]]:
    for metrics in rows:
        for key, totals in metrics.model_usage.items():
            yield metrics, key, totals

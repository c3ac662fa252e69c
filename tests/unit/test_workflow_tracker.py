"""The live monitoring view: bounded memory however long it runs, at-least-once delivery
deduplicated, and statistics computed from what it holds."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import async_sessionmaker

from chatter.domain.events import EventCategory, EventType, UnifiedEvent
from chatter.domain.monitoring import CallSample, ToolSample, UsageTotals
from chatter.events.bus import InProcessBus
from chatter.services.monitoring import MonitoringService
from chatter.services.workflow_tracker import SECURITY_MINUTES
from chatter.settings import MonitoringSettings

# After the service starts: the live view covers only what happened since it started.
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
SETTINGS = MonitoringSettings(recent_executions=1000, max_in_flight=100, dedupe_ids=5000)


def service(settings: MonitoringSettings = SETTINGS) -> MonitoringService:
    # No database: these tests use the live view only.
    return MonitoringService(InProcessBus(), async_sessionmaker(), settings)


def run_execution(monitoring: MonitoringService, n: int) -> None:
    started = T0 + timedelta(seconds=n)
    execution_id = monitoring.start_workflow_tracking(
        execution_id=f"exec-{n}",
        workflow="chat_with_tools",
        user_id=f"user-{n % 7}",
        conversation_id=f"conv-{n}",
        correlation_id=f"corr-{n}",
        provider="openai",
        model="gpt-4o-mini",
        started_at=started,
    )
    usage = UsageTotals(
        prompt_tokens=100, completion_tokens=20, total_tokens=120, cost=Decimal("0.0001")
    )
    call = CallSample("openai", "gpt-4o-mini", usage, latency_ms=n % 500, node="model")
    monitoring.update_workflow_metrics(execution_id, llm_call=call)
    monitoring.update_workflow_metrics(execution_id, tool_call=ToolSample("calculator", 3))
    monitoring.finish_workflow_tracking(
        execution_id, status="completed", finished_at=started + timedelta(milliseconds=n % 900)
    )


def container_sizes(monitoring: MonitoringService) -> dict[str, int]:
    return monitoring.tracker.sizes()


def test_memory_stays_bounded_over_100k_executions() -> None:
    monitoring = service()
    for n in range(10_000):
        run_execution(monitoring, n)
    gc.collect()
    objects_at_10k = len(gc.get_objects())
    for n in range(10_000, 100_000):
        run_execution(monitoring, n)
    gc.collect()
    objects_at_100k = len(gc.get_objects())
    sizes = container_sizes(monitoring)
    assert sizes["recent"] == sizes["recent_by_id"] == 1000
    assert sizes["in_flight"] == 0
    # 90,000 more executions left no more objects alive (slack for interpreter noise).
    assert objects_at_100k - objects_at_10k < 500, (objects_at_10k, objects_at_100k)
    # And no more memory, measured over a further 10,000.
    tracemalloc.start()
    try:
        for n in range(100_000, 101_000):
            run_execution(monitoring, n)
        before, _ = tracemalloc.get_traced_memory()
        for n in range(101_000, 111_000):
            run_execution(monitoring, n)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, (before, after)
    # The newest are the ones kept; the view knows it no longer holds older ones.
    assert monitoring.tracker.get("exec-110999") is not None
    assert monitoring.tracker.get("exec-109999") is None
    assert monitoring.tracker.covers(T0 + timedelta(seconds=110_000))
    assert not monitoring.tracker.covers(T0 + timedelta(seconds=109_999))


def test_in_flight_executions_and_event_ids_are_capped() -> None:
    monitoring = service()
    for n in range(1000):
        monitoring.start_workflow_tracking(
            execution_id=f"open-{n}", workflow="chat", user_id="u", started_at=T0
        )
    assert container_sizes(monitoring)["in_flight"] == 100
    assert monitoring.tracker.get("open-0") is None
    assert monitoring.tracker.get("open-999") is not None
    for event_id in range(1, 20_001):
        monitoring.handle(security_event(event_id, T0))
    assert container_sizes(monitoring)["seen"] == 5000


def security_event(event_id: int, at: datetime) -> UnifiedEvent:
    return UnifiedEvent(
        id=event_id,
        category=EventCategory.SECURITY,
        type=EventType.LOGIN_FAILED,
        created_at=at,
        correlation_id=None,
        user_id=None,
        conversation_id=None,
        execution_id=None,
        data={"email": "x@example.com", "reason": "bad_password"},
    )


def test_security_counters_cover_seven_days_in_fixed_size() -> None:
    monitoring = service()
    for minute in range(SECURITY_MINUTES * 2):
        monitoring.handle(security_event(minute + 1, T0 + timedelta(minutes=minute)))
    assert container_sizes(monitoring)["security_minutes"] == SECURITY_MINUTES
    now = T0 + timedelta(minutes=SECURITY_MINUTES * 2 - 1)
    counts = monitoring.tracker.stats(window=timedelta(minutes=15), now=now, user_id=None)
    assert counts.security_events == {"login_failed": 16}  # minutes now-15 .. now


def workflow_events(execution_id: str, first_id: int) -> list[UnifiedEvent]:
    def event(offset: int, kind: EventType, data: dict[str, object]) -> UnifiedEvent:
        return UnifiedEvent(
            id=first_id + offset,
            category=EventCategory.TOOL
            if kind is EventType.TOOL_CALLED
            else EventCategory.WORKFLOW,
            type=kind,
            created_at=T0 + timedelta(milliseconds=100 * offset),
            correlation_id="corr",
            user_id="alice",
            conversation_id="conv",
            execution_id=execution_id,
            data=data,
        )

    call = {
        "call_id": "c1",
        "node": "model",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 50,
        "completion_tokens": 10,
        "total_tokens": 60,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost": "0.000013",
        "cost_known": True,
        "currency": "USD",
        "usage_source": "provider",
        "latency_ms": 40,
        "time_to_first_token_ms": 12,
        "status": "succeeded",
        "error": None,
    }
    closed = {
        "status": "completed",
        "workflow": "chat_with_tools",
        "prompt_tokens": 50,
        "completion_tokens": 10,
        "total_tokens": 60,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost": "0.000013",
        "duration_ms": 300,
        "llm_call_count": 1,
    }
    tool = {"name": "calculator", "duration_ms": 5, "status": "ok"}
    return [
        event(
            0,
            EventType.WORKFLOW_STARTED,
            {"workflow": "chat_with_tools", "provider": "openai", "model": "gpt-4o-mini"},
        ),
        event(1, EventType.LLM_CALL_COMPLETED, call),
        event(2, EventType.TOOL_CALLED, tool),
        event(3, EventType.WORKFLOW_COMPLETED, closed),
    ]


def test_events_delivered_twice_count_once() -> None:
    monitoring = service()
    events = workflow_events("exec-a", 1)
    for event in [*events, *events, events[1]]:  # at least once: duplicates, replays
        monitoring.handle(event)
    metrics = monitoring.tracker.get("exec-a")
    assert metrics is not None
    assert (metrics.status, metrics.llm_call_count, metrics.tool_call_count) == ("completed", 1, 1)
    assert (metrics.total_tokens, metrics.cost) == (60, Decimal("0.000013"))
    assert metrics.node_timings == {"model": 40, "tools": 5}
    assert metrics.time_to_first_token_ms == 12
    stats = monitoring.tracker.stats(
        window=timedelta(hours=1), now=T0 + timedelta(minutes=1), user_id="alice"
    )
    assert [m.execution_id for m in stats.workflow_ops] == ["exec-a"]
    assert stats.counts_by_status == {"completed": 1}
    (group,) = stats.by_model
    assert (group.key, group.usage.total_tokens, group.execution_count) == (
        "openai/gpt-4o-mini",
        60,
        1,
    )


def test_a_close_seen_without_its_start_is_still_counted() -> None:
    monitoring = service()
    monitoring.handle(workflow_events("exec-b", 10)[-1])
    metrics = monitoring.tracker.get("exec-b")
    assert metrics is not None
    assert (metrics.status, metrics.workflow, metrics.total_tokens) == (
        "completed",
        "chat_with_tools",
        60,
    )
    assert metrics.started_at == T0 + timedelta(milliseconds=300 - 300)


def test_live_stats_percentiles_and_error_rate() -> None:
    monitoring = service()
    for n, status in enumerate(["completed"] * 8 + ["failed", "cancelled"]):
        execution_id = monitoring.start_workflow_tracking(
            execution_id=f"e{n}", workflow="chat", user_id="u", started_at=T0
        )
        monitoring.finish_workflow_tracking(
            execution_id,
            status=status,
            duration_ms=(n + 1) * 100,
            error="boom" if status == "failed" else None,
        )
    stats = monitoring.tracker.stats(window=timedelta(minutes=15), now=T0, user_id=None)
    assert (stats.duration_ms.p50, stats.duration_ms.p95, stats.duration_ms.p99) == (
        500,
        1000,
        1000,
    )
    assert stats.error_rate == 0.1
    assert stats.counts_by_status == {"completed": 8, "failed": 1, "cancelled": 1}
    failed = monitoring.tracker.get("e8")
    assert failed is not None
    assert failed.errors == ["boom"]

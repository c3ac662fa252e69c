"""Prometheus metrics, fed by the events this process committed (never by calls sprinkled
through services) and by the HTTP middleware.

Each app has its own `CollectorRegistry` (tests build many apps in one process). With several
workers, prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) keeps each
process's values in files, and a scrape merges every worker's files: the registry then only
owns the metric objects, and `exposition` reads the files instead."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from chatter.domain.events import EventCategory, EventType, UnifiedEvent
from chatter.errors import ExecutionInterrupted
from chatter.observability import conventions as c
from chatter.observability.logging import get_logger

log = get_logger("chatter.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN_KINDS = {
    "prompt": "prompt_tokens",
    "completion": "completion_tokens",
    "cached": "cached_tokens",
    "reasoning": "reasoning_tokens",
}
_WORKFLOW_CLOSED = {
    EventType.WORKFLOW_COMPLETED,
    EventType.WORKFLOW_FAILED,
    EventType.WORKFLOW_CANCELLED,
}
# Model calls and turns last from milliseconds (a local model) to minutes (a long answer).
_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def multiprocess_dir() -> str | None:
    """Where worker processes share their values, when several workers are configured."""
    return os.environ.get(MULTIPROC_ENV) or None


class ChatterMetrics:
    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        # Model and tool names come from users and models: past a bound, new ones are
        # counted under "other", so a stream of made-up names cannot grow memory for ever.
        self._models = _BoundedLabels(MAX_MODEL_LABELS)
        self._tools = _BoundedLabels(MAX_TOOL_LABELS)
        self._define(self.registry)

    def _define(self, registry: CollectorRegistry) -> None:
        pm = (c.L_PROVIDER, c.L_MODEL)
        self.llm_requests = Counter(
            c.LLM_REQUESTS, "Model calls, by outcome.", (*pm, c.L_STATUS), registry=registry
        )
        self.llm_tokens = Counter(
            c.LLM_TOKENS, "Tokens of model calls, by kind.", (*pm, c.L_KIND), registry=registry
        )
        self.llm_cost = Counter(
            c.LLM_COST, "Known cost of model calls.", (*pm, c.L_CURRENCY), registry=registry
        )
        self.llm_cost_unknown = Counter(
            c.LLM_COST_UNKNOWN, "Model calls without a known price.", pm, registry=registry
        )
        self.llm_latency = Histogram(
            c.LLM_LATENCY, "Model call duration.", pm, buckets=_LLM_BUCKETS, registry=registry
        )
        self.llm_ttft = Histogram(
            c.LLM_TTFT, "Time to a call's first token.", pm, buckets=_LLM_BUCKETS, registry=registry
        )
        self.usage_estimated = Counter(
            c.USAGE_ESTIMATED, "Model calls whose usage was estimated.", pm, registry=registry
        )
        self.workflow_executions = Counter(
            c.WORKFLOW_EXECUTIONS,
            "Finished workflow executions (turns), by outcome.",
            (c.L_WORKFLOW, c.L_STATUS),
            registry=registry,
        )
        self.workflow_duration = Histogram(
            c.WORKFLOW_DURATION,
            "Workflow execution duration.",
            (c.L_WORKFLOW,),
            buckets=_LLM_BUCKETS,
            registry=registry,
        )
        self.tool_calls = Counter(
            c.TOOL_CALLS, "Tool calls, by outcome.", (c.L_TOOL, c.L_STATUS), registry=registry
        )
        self.security_events = Counter(
            c.SECURITY_EVENTS, "Security events, by type.", (c.L_TYPE,), registry=registry
        )
        self.rate_limited = Counter(
            c.RATE_LIMITED,
            "Requests refused by a rate limit or a login lockout, by scope "
            "(requests, tokens, login, register).",
            (c.L_SCOPE,),
            registry=registry,
        )
        self.http_requests = Counter(
            c.HTTP_REQUESTS,
            "HTTP requests, by route template and status.",
            (c.L_METHOD, c.L_ROUTE, c.L_STATUS),
            registry=registry,
        )
        self.http_duration = Histogram(
            c.HTTP_DURATION,
            "HTTP request duration (streams: until the stream ends).",
            (c.L_METHOD, c.L_ROUTE),
            buckets=_HTTP_BUCKETS,
            registry=registry,
        )
        self.executions_recovered = Counter(
            c.EXECUTIONS_RECOVERED,
            "Executions closed as failed by recovery (their worker stopped heartbeating).",
            registry=registry,
        )
        # livesum: the sum over workers that are alive (a dead worker's streams are gone).
        self.active_streams = Gauge(
            c.ACTIVE_STREAMS,
            "Server-sent event streams in flight (chat and event streams).",
            (c.L_ROUTE,),
            multiprocess_mode="livesum",
            registry=registry,
        )

    # --- fed by EventPublisher's local listener ---------------------------------------------

    def observe_events(self, events: Sequence[UnifiedEvent]) -> None:
        """Called with the events this process committed, once each."""
        for event in events:
            if event.type is EventType.LLM_CALL_COMPLETED:
                self._model_call(event.data)
            elif event.type is EventType.TOOL_CALLED:
                tool = self._tools.one(_label(event.data.get("name")))
                self.tool_calls.labels(tool, _label(event.data.get("status"))).inc()
            elif event.type in _WORKFLOW_CLOSED:
                self._workflow_closed(event.data)
            elif event.category is EventCategory.SECURITY:
                self.security_events.labels(event.type.value).inc()
                if event.type is EventType.RATE_LIMITED:
                    self.rate_limited.labels(_label(event.data.get("scope"))).inc()

    def _model_call(self, data: dict[str, Any]) -> None:
        provider, model = self._models.pair(_label(data.get("provider")), _label(data.get("model")))
        self.llm_requests.labels(provider, model, _label(data.get("status"))).inc()
        for kind, field in TOKEN_KINDS.items():
            self.llm_tokens.labels(provider, model, kind).inc(int(data.get(field) or 0))
        if data.get("cost_known"):
            cost = _decimal(data.get("cost"))
            self.llm_cost.labels(provider, model, _label(data.get("currency"))).inc(float(cost))
        else:
            self.llm_cost_unknown.labels(provider, model).inc()
        if data.get("usage_source") == "estimated":
            self.usage_estimated.labels(provider, model).inc()
        latency_ms = data.get("latency_ms")
        if latency_ms is not None:
            self.llm_latency.labels(provider, model).observe(latency_ms / 1000)
        ttft_ms = data.get("time_to_first_token_ms")
        if ttft_ms is not None:
            self.llm_ttft.labels(provider, model).observe(ttft_ms / 1000)

    def _workflow_closed(self, data: dict[str, Any]) -> None:
        workflow = _label(data.get("workflow"))
        self.workflow_executions.labels(workflow, _label(data.get("status"))).inc()
        error = data.get("error")
        if isinstance(error, dict) and error.get("code") == ExecutionInterrupted.code:
            self.executions_recovered.inc()
        duration_ms = data.get("duration_ms")
        if duration_ms is not None:
            self.workflow_duration.labels(workflow).observe(duration_ms / 1000)

    # --- the scrape ---------------------------------------------------------------------------

    def exposition(self, *, outbox_backlog: int) -> bytes:
        """The text format of every metric: this app's values (or, in multiprocess mode,
        every worker's, merged from their files) plus values computed at scrape time."""
        scrape = CollectorRegistry()
        if self.multiprocess_dir is not None:
            multiprocess.MultiProcessCollector(scrape, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            scrape.register(self.registry)
        backlog = GaugeMetricFamily(
            c.OUTBOX_BACKLOG, "Committed events not yet published to the bus.", value=outbox_backlog
        )
        scrape.register(_Fixed([backlog]))
        return generate_latest(scrape)

    def process_exited(self) -> None:
        """In multiprocess mode: drop this worker's live gauges (`livesum`) from the sums."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


class _Fixed(Collector):
    """Metric families computed before the scrape (a database count cannot run inside the
    synchronous `collect`)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


MAX_MODEL_LABELS = 500  # distinct provider/model pairs labelled by name
MAX_TOOL_LABELS = 200
OTHER = "other"


class _BoundedLabels:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[tuple[str, ...]] = set()

    def _admit(self, key: tuple[str, ...]) -> bool:
        if key in self._seen:
            return True
        if len(self._seen) < self._limit:
            self._seen.add(key)
            return True
        return False

    def pair(self, provider: str, model: str) -> tuple[str, str]:
        return (provider, model) if self._admit((provider, model)) else (provider, OTHER)

    def one(self, name: str) -> str:
        return name if self._admit((name,)) else OTHER


def _label(value: object) -> str:
    return "" if value is None else str(value)


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)

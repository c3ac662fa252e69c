"""OpenTelemetry tracing, per app: off unless the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `..._TRACES_ENDPOINT`) is set, so nothing leaves the process by default.

The tracer provider belongs to the app (never `trace.set_tracer_provider`): tests build many
apps in one process, each with its own exporter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)

from chatter.observability import conventions as c

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "chatter"


@dataclass
class Tracing:
    tracer: trace.Tracer
    provider: TracerProvider | None = None

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def flush(self) -> None:
        """Export what is pending (at the app's shutdown; the provider itself shuts down
        at process exit, so an app whose lifespan runs again still traces)."""
        if self.provider is not None:
            self.provider.force_flush()

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(trace.NoOpTracer())

    @classmethod
    def to_exporter(
        cls,
        exporter: SpanExporter,
        *,
        service_name: str = DEFAULT_SERVICE_NAME,
        batch: bool = False,
    ) -> Tracing:
        """Spans go to `exporter` (tests: an in-memory one, exported as each span ends)."""
        # Batching (OTLP) exporters are stopped at exit; in-memory ones need no stopping.
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service_name}), shutdown_on_exit=batch
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider.get_tracer(c.TRACER_NAME), provider)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Tracing:
        """OTLP over HTTP when an endpoint is configured (the exporter reads the standard
        OTEL_EXPORTER_OTLP_* variables itself: headers, timeout, ...), else no tracing."""
        if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return cls.disabled()
        if environ.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
            return cls.disabled()
        if not any(environ.get(name) for name in ENDPOINT_VARS):
            return cls.disabled()
        # Imported only when on: its import pulls in protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        service_name = environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
        return cls.to_exporter(OTLPSpanExporter(), service_name=service_name, batch=True)

"""What an app observes itself with: its metrics and its tracer. Built once per app by the
app factory (tests pass their own) and held by the container."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from chatter.observability.metrics import ChatterMetrics, multiprocess_dir
from chatter.observability.tracing import Tracing


@dataclass
class Telemetry:
    metrics: ChatterMetrics = field(default_factory=ChatterMetrics)
    tracing: Tracing = field(default_factory=Tracing.disabled)

    @classmethod
    def from_environment(cls) -> Telemetry:
        """`PROMETHEUS_MULTIPROC_DIR` and the standard `OTEL_*` variables decide; read when
        the app is built, never at import."""
        return cls(
            ChatterMetrics(multiprocess_dir=multiprocess_dir()),
            Tracing.from_environment(os.environ),
        )

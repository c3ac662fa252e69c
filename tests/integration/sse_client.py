"""A small SSE reader for tests: yields (event, data, id) as they arrive, plus comments and
`retry` hints (as events named "comment" and "retry")."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class SseEvent:
    event: str
    data: Any
    received_at: float
    id: str | None = None


async def read_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    name, data_lines, event_id = "message", [], None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield SseEvent("comment", line[1:].strip(), time.monotonic())
        elif line.startswith("retry:"):
            yield SseEvent("retry", int(line[len("retry:") :].strip()), time.monotonic())
        elif line.startswith("id:"):
            event_id = line[len("id:") :].strip()
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data_lines.append(line[len("data:") :].strip())
        elif line == "" and data_lines:
            data = json.loads("\n".join(data_lines))
            yield SseEvent(name, data, time.monotonic(), event_id)
            name, data_lines, event_id = "message", [], None

"""A small SSE reader for tests: yields (event, data) as they arrive, plus comments."""

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


async def read_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    name, data_lines = "message", []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield SseEvent("comment", line[1:].strip(), time.monotonic())
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data_lines.append(line[len("data:") :].strip())
        elif line == "" and data_lines:
            yield SseEvent(name, json.loads("\n".join(data_lines)), time.monotonic())
            name, data_lines = "message", []

"""Event delivery: while turns run one at a time, a subscriber reads Chatter's live event
stream (`GET /api/v1/events`); for each `workflow_completed` the delay is its arrival at the
subscriber minus the event's `created_at` (written just before the turn's closing commit)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench import load
from bench.processes import BenchError
from bench.targets import Target

SUBSCRIBE_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 15.0  # after the last turn, for the last events to arrive


@dataclass(frozen=True)
class Delivery:
    turns: int
    delays_ms: list[float] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "received": len(self.delays_ms),
            "p50_ms": round(load.percentile(self.delays_ms, 50), 2),
            "p99_ms": round(load.percentile(self.delays_ms, 99), 2),
            "max_ms": round(max(self.delays_ms, default=float("nan")), 2),
        }


async def measure(target: Target, turns: int) -> Delivery:
    if target.events_url is None or target.headers is None:
        raise BenchError(f"{target.name} has no event stream")
    delays: list[float] = []
    subscribed, complete = asyncio.Event(), asyncio.Event()
    async with load.client() as http:
        reader = asyncio.create_task(_read(http, target, delays, subscribed, complete, turns))
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await _until(subscribed, reader)
            await load.run(target.turn, turns, 1, warmup=0)
            # The last events may still be on their way.
            await asyncio.wait_for(_until(complete, reader), DRAIN_TIMEOUT_S)
        except TimeoutError as exc:
            if subscribed.is_set():
                return Delivery(turns, delays)  # a short count, shown as received < turns
            raise BenchError(f"{target.name}: the event stream did not open") from exc
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader
    return Delivery(turns, delays)


async def _until(flag: asyncio.Event, reader: asyncio.Task[None]) -> None:
    """Until `flag` is set; fails if the reader ends first."""
    waiter = asyncio.create_task(flag.wait())
    await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not flag.is_set():
        reader.result()  # raises what ended it
        raise BenchError("the event stream ended early")


async def _read(
    http: httpx.AsyncClient,
    target: Target,
    delays: list[float],
    subscribed: asyncio.Event,
    complete: asyncio.Event,
    turns: int,
) -> None:
    assert target.events_url is not None
    async with http.stream("GET", target.events_url, headers=target.headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise BenchError(f"events: {response.status_code} {response.text[:200]}")
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("retry:"):
                subscribed.set()  # sent once subscribed: every later commit reaches us
            elif line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:") and name == "workflow_completed":
                received = time.time()
                created = datetime.fromisoformat(json.loads(line[len("data:") :])["created_at"])
                delays.append((received - created.timestamp()) * 1000)
                if len(delays) >= turns:
                    complete.set()
            elif not line:
                name = ""

"""How fast does a committed event reach a live subscriber? Chat turns through the app with
the offline demo model; for each `workflow_completed`, the time from its write (just before
the closing commit) to its arrival at a subscriber, over the in-process bus or, when
CHATTER_BENCH_REDIS_URL is set, Redis Streams. Also the turn's CPU with events on."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx
from fastapi import FastAPI

from chatter.container import Container
from chatter.domain.events import EventType, UnifiedEvent

TURNS = 60


async def measure(app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    container: Container = app.state.container
    latencies: list[float] = []
    with container.publisher.bus.subscribe() as subscription:

        async def listen() -> None:
            while len(latencies) < TURNS:
                event: UnifiedEvent = await subscription.get()
                if event.type is EventType.WORKFLOW_COMPLETED:
                    latencies.append(time.time() - event.created_at.timestamp())

        listener = asyncio.create_task(listen())
        for _ in range(TURNS):
            response = await client.post(
                "/api/v1/chat", json={"message": "Hello there!"}, headers=headers
            )
            response.raise_for_status()
        await asyncio.wait_for(listener, 10)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    bus = "redis streams" if os.environ.get("CHATTER_BENCH_REDIS_URL") else "in-process bus"
    print(f"event delivery ({bus}), commit -> subscriber   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")

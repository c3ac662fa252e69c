"""What does accounting cost? A chat turn through Chatter (HTTP, workflow, SQL writes) against
the bare model call it wraps, both with the offline demo model, measured in the same run.

Ratios, not absolute times, are the result: the machine's speed cancels out.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from langchain_core.messages import HumanMessage

from chatter.app import create_app
from chatter.providers.demo import DemoChatModel
from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.migrate import upgrade_to_head

TURNS = 60
CONCURRENT = 20
WARMUP = 5


async def _timed(fn: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    for _ in range(WARMUP):
        await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def _bare_model_call(model: DemoChatModel) -> None:
    async for _ in model.astream([HumanMessage("Hello there, how are you today?")]):
        pass


def _report(name: str, samples: list[float], baseline: float) -> None:
    median = statistics.median(samples)
    print(f"{name:<34} median {median * 1000:8.2f} ms   x{median / baseline:7.1f} baseline")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_engine(url)
        await upgrade_to_head(engine)
        await engine.dispose()
        settings = Settings(
            _env_file=None,
            env="test",
            secret_key="bench-secret-key-long-enough-for-hs256-0123",
            database_url=url,
            log_level="WARNING",
            llm={"demo_chunk_delay_s": 0.0},
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await _run(client)


async def _run(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/auth/register", json={"email": "bench@example.com", "password": "benchmark!"}
    )
    login = await client.post(
        "/api/v1/auth/login", json={"email": "bench@example.com", "password": "benchmark!"}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    model = DemoChatModel()
    baseline = statistics.median(await _timed(lambda: _bare_model_call(model), TURNS))

    async def turn() -> None:
        response = await client.post(
            "/api/v1/chat", json={"message": "Hello there, how are you today?"}, headers=headers
        )
        response.raise_for_status()

    print(f"demo model, {TURNS} runs each (baseline: the bare model stream)")
    print(f"{'bare model call (baseline)':<34} median {baseline * 1000:8.2f} ms")
    cpu_started = time.process_time()
    _report("chat turn, new conversation", await _timed(turn, TURNS), baseline)
    # CPU time is steadier than wall time on a shared machine (client included: ASGI).
    cpu_ms = (time.process_time() - cpu_started) * 1000 / (TURNS + WARMUP)
    print(f"{'process CPU per chat turn':<34}        {cpu_ms:8.2f} ms")

    started = time.perf_counter()
    await asyncio.gather(*[turn() for _ in range(CONCURRENT)])
    elapsed = time.perf_counter() - started
    print(f"{CONCURRENT} concurrent turns (SQLite)        {CONCURRENT / elapsed:8.1f} turns/s")

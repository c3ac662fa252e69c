"""The one load client every target is measured with (the direct call, Chatter, the peer):
C workers with a keep-alive httpx connection each, a warm-up, then N requests between them.
A request is a non-streaming POST (latency = until the whole body is read) or a streamed
POST (latency = time to the first token; the rest of the stream is still read)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.processes import BenchError

# Does this SSE line carry the first token? (differs between Chatter and OpenAI's format)
TokenLine = Callable[[str], bool]
Request = Callable[[httpx.AsyncClient], Awaitable[float]]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted samples; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Phase:
    """One measured batch: latencies in ms, wall time, server CPU over the batch."""

    requests: int
    concurrency: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    errors: int
    cpu_s: float | None
    first_error: str | None = None

    @property
    def per_s(self) -> float:
        return self.requests / self.wall_s

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def cpu_ms_per_request(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s * 1000 / self.requests

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "per_s": round(self.per_s, 1),
            "p50_ms": round(self.p(50), 2),
            "p95_ms": round(self.p(95), 2),
            "p99_ms": round(self.p(99), 2),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 2),
            "cpu_ms_per_request": _round(self.cpu_ms_per_request),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def client() -> httpx.AsyncClient:
    """One keep-alive connection, no proxies. Each concurrent worker has its own: one shared
    pool of 64 connections costs httpcore ~4 ms of client CPU per request (it scans the
    pool), which capped the direct call at ~200 requests/s on a 2-core machine."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0), trust_env=False)


def post_json(url: str, body: dict[str, Any], headers: dict[str, str]) -> Request:
    async def request(http: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        response = await http.post(url, json=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code >= 400:
            raise BenchError(f"{response.status_code} {response.text[:300]}")
        return elapsed

    return request


def post_stream(
    url: str, body: dict[str, Any], headers: dict[str, str], is_token: TokenLine
) -> Request:
    async def request(http: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        first: float | None = None
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise BenchError(f"{response.status_code} {response.text[:300]}")
            async for line in response.aiter_lines():
                if first is None and is_token(line):
                    first = time.perf_counter() - started
        if first is None:
            raise BenchError("the stream ended without a token")
        return first

    return request


def chatter_token(line: str) -> bool:
    return line.startswith("event:") and line[len("event:") :].strip() == "delta"


def openai_token(line: str) -> bool:
    if not line.startswith("data:") or '"content"' not in line:
        return False
    chunk = json.loads(line[len("data:") :])
    choices = chunk.get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def run(
    request: Request,
    total: int,
    concurrency: int,
    cpu: Callable[[], float] | None = None,
    warmup: int = 2,
) -> Phase:
    """`concurrency` workers, each with its own connection: `warmup` unmeasured requests per
    worker, then `total` requests shared between them; the server's CPU (`cpu()`) is read
    around the measured part."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client()) for _ in range(concurrency)]
        await _batch(clients, request, warmup * concurrency)
        cpu_before = cpu() if cpu else None
        started = time.perf_counter()
        latencies, errors = await _batch(clients, request, total)
        wall = time.perf_counter() - started
        cpu_s = cpu() - cpu_before if cpu and cpu_before is not None else None
    if not latencies:
        raise BenchError(f"every request failed, e.g. {errors[0]}")
    first_error = errors[0] if errors else None
    ms = [s * 1000 for s in latencies]
    return Phase(total, concurrency, wall, ms, len(errors), cpu_s, first_error)


async def _batch(
    clients: list[httpx.AsyncClient], request: Request, total: int
) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    remaining = iter(range(total))

    async def worker(http: httpx.AsyncClient) -> None:
        for _ in remaining:
            try:
                latencies.append(await request(http))
            except (BenchError, httpx.HTTPError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker(http) for http in clients))
    return latencies, errors

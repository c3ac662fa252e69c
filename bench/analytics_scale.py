"""Analytics at scale: a month's summary reads rollups only - does its cost stay flat as the
calls behind it grow? Seeds 1,000,000 LLM calls (and 10,000 as the control) into
fresh databases - a SQLite file under var/bench/, and PostgreSQL next to
CHATTER_TEST_DATABASE_URL when it is set (dropped afterwards) - then times the real app's
analytics endpoints over in-process HTTP. Target: p95 < 50 ms for a 30-day summary.

CHATTER_BENCH_ANALYTICS_CALLS changes the large size. Results: a table, and
var/bench/analytics.json."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from bench import analytics_seed
from bench.scratch_database import scratch_postgres
from chatter.app import create_app
from chatter.container import Container
from chatter.domain.clock import utcnow
from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.migrate import upgrade_to_head

LARGE = int(os.environ.get("CHATTER_BENCH_ANALYTICS_CALLS", "1000000"))
SMALL = 10_000
RUNS = 50
WARMUP = 5
TARGET_MS = 50.0
TARGET_QUERIES = ("summary 30 d, admin", "summary 30 d, user")
OUT = Path(__file__).resolve().parent.parent / "var" / "bench"
console = Console()


@dataclass(frozen=True)
class Timing:
    path: str
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Run:
    database: str
    calls: int
    executions: int
    tool_calls: int
    rollup_rows: int
    seed_seconds: float
    rows_per_s: float
    rollups_checked: bool | None  # rollups = sums over the raw rows (small runs only)
    timings: dict[str, Timing]


def _queries(now: datetime) -> dict[str, tuple[str, bool]]:
    """Name -> (path and query string, as the admin?)."""
    month = {"start": (now - timedelta(days=30)).isoformat(), "end": now.isoformat()}
    week = {"granularity": "hour", "start": (now - timedelta(days=7)).isoformat()}
    summary, usage = "/api/v1/analytics/summary?", "/api/v1/analytics/usage?"
    return {
        TARGET_QUERIES[0]: (summary + urlencode(month), True),
        TARGET_QUERIES[1]: (summary + urlencode(month), False),
        "hourly 7 d, admin": (usage + urlencode(week), True),
        "hourly 7 d by model, admin": (usage + urlencode({**week, "group_by": "model"}), True),
        "hourly 7 d, user": (usage + urlencode(week), False),
    }


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


async def _time(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Timing:
    samples = []
    for run in range(WARMUP + RUNS):
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        if run >= WARMUP:
            samples.append(elapsed * 1000)
    return Timing(path, round(statistics.median(samples), 2), round(_p95(samples), 2))


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": analytics_seed.PASSWORD}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _settings(url: str) -> Settings:
    return Settings(
        _env_file=None,
        env="test",
        secret_key="bench-secret-key-long-enough-for-hs256-0123",
        database_url=url,
        log_level="WARNING",
    )


async def _measure_app(url: str, now: datetime, check: bool) -> tuple[dict[str, Timing], bool]:
    """The real app against the seeded database: every query timed over HTTP."""
    app = create_app(_settings(url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            admin = await _login(client, analytics_seed.ADMIN_EMAIL)
            user = await _login(client, analytics_seed.USER_EMAIL)
            timings = {
                name: await _time(client, path, admin if as_admin else user)
                for name, (path, as_admin) in _queries(utcnow()).items()
            }
        container: Container = app.state.container
        matched = check and not await container.analytics.check(now - timedelta(days=32))
    return timings, matched


@asynccontextmanager
async def _database(kind: str, calls: int) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file kept under var/bench/ (replaced on every run),
    or a PostgreSQL database next to `kind`'s admin URL, dropped afterwards."""
    if kind == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"analytics-{calls}.db"
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        yield f"sqlite+aiosqlite:///{path}"
        return
    async with scratch_postgres(kind) as url:
        yield url


async def _run(kind: str, calls: int) -> Run:
    label = "sqlite" if kind == "sqlite" else "postgresql"
    async with _database(kind, calls) as url:
        engine = create_engine(url)
        await upgrade_to_head(engine)
        now = utcnow()
        with console.status(f"{label}: seeding {calls:,} LLM calls") as status:

            def progress(done: int, total: int) -> None:
                status.update(f"{label}: seeding {calls:,} LLM calls: {done:,}/{total:,}")

            seeded = await analytics_seed.seed(engine, calls, now, progress)
        if label == "postgresql":
            # What autovacuum does soon after a bulk load: give the planner statistics.
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE"))
                await connection.commit()
        await engine.dispose()
        console.print(
            f"{label}: seeded {seeded.calls:,} calls ({seeded.executions:,} executions, "
            f"{seeded.tool_calls:,} tool calls, {seeded.rollup_rows:,} rollup rows) in "
            f"{seeded.seconds:.1f} s: {seeded.rows / seeded.seconds:,.0f} rows/s"
        )
        timings, matched = await _measure_app(url, now, check=calls <= SMALL)
    return Run(
        database=label,
        calls=seeded.calls,
        executions=seeded.executions,
        tool_calls=seeded.tool_calls,
        rollup_rows=seeded.rollup_rows,
        seed_seconds=round(seeded.seconds, 1),
        rows_per_s=round(seeded.rows / seeded.seconds),
        rollups_checked=matched if calls <= SMALL else None,
        timings=timings,
    )


def _verdict(p95: float) -> str:
    return "[green]PASS[/green]" if p95 < TARGET_MS else "[red]FAIL[/red]"


def _size(calls: int) -> str:
    if calls % 1_000_000 == 0:
        return f"{calls // 1_000_000}M"
    return f"{calls // 1000}k" if calls % 1000 == 0 else f"{calls:,}"


def _report(runs: list[Run]) -> dict[str, dict[str, float]]:
    """The table (small and large runs side by side); returns the p95 ratios large/small."""
    small_n, large_n = _size(runs[0].calls), _size(runs[1].calls)
    table = Table(title=f"Analytics over HTTP, ms: {RUNS} requests each after {WARMUP} warm-ups")
    for column in ("db", "query"):
        table.add_column(column)
    for column in (f"{small_n} p50", f"{small_n} p95", f"{large_n} p50", f"{large_n} p95"):
        table.add_column(column, justify="right")
    table.add_column(f"p95 {large_n}/{small_n}", justify="right")
    table.add_column(f"p95 < {TARGET_MS:.0f}", justify="center")
    ratios: dict[str, dict[str, float]] = {}
    for small, large in zip(runs[::2], runs[1::2], strict=True):
        ratios[large.database] = {}
        for name, timing in large.timings.items():
            base = small.timings[name]
            ratio = ratios[large.database][name] = round(timing.p95_ms / base.p95_ms, 2)
            table.add_row(
                "sqlite" if large.database == "sqlite" else "pg",
                name,
                *(f"{v:.1f}" for v in (base.p50_ms, base.p95_ms, timing.p50_ms, timing.p95_ms)),
                f"x{ratio:.2f}",
                _verdict(timing.p95_ms) if name in TARGET_QUERIES else "",
            )
    console.print(table)
    for run in runs:
        console.print(
            f"{run.database} {run.calls:,} calls: {run.rollup_rows:,} rollup rows, "
            f"seeded in {run.seed_seconds:.1f} s ({run.rows_per_s:,.0f} rows/s)"
        )
    return ratios


async def main() -> None:
    kinds = ["sqlite"]
    if os.environ.get("CHATTER_TEST_DATABASE_URL"):
        kinds.append(os.environ["CHATTER_TEST_DATABASE_URL"])
    runs = []
    for kind in kinds:
        for calls in (SMALL, LARGE):
            runs.append(await _run(kind, calls))
    for run in runs:
        if run.rollups_checked is not None:
            state = "yes" if run.rollups_checked else "NO"
            console.print(f"{run.database} {run.calls:,} calls: rollups = sums of calls: {state}")
    ratios = _report(runs)
    figures = {
        "timestamp": utcnow().isoformat(),
        "target": {"queries": TARGET_QUERIES, "p95_ms_below": TARGET_MS, "calls": LARGE},
        "requests": RUNS,
        "warmup": WARMUP,
        "runs": [asdict(run) for run in runs],
        "p95_ratio_large_to_small": ratios,
        "passed": {
            run.database: all(run.timings[q].p95_ms < TARGET_MS for q in TARGET_QUERIES)
            for run in runs
            if run.calls == max(r.calls for r in runs if r.database == run.database)
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "analytics.json").write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"written: {OUT / 'analytics.json'}")

"""`python -m bench turns`: chat turns through a real Chatter server against the direct call
to the same fake upstream (the baseline) and, with `--peer litellm`, the LiteLLM proxy.

Targets that are compared run side by side and phase by phase (c1 for each, then the
stream for each, ...), so that load from elsewhere on a shared machine falls on all of them.
Every Chatter turn opens a new conversation, so the history sent to the model never grows."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import delivery, load, peer, report, targets
from bench.processes import BenchError, Server

# Wide enough for five targets when the output is a file or a pipe (rich assumes 80).
console = Console(width=None if sys.stdout.isatty() else 130)
Starter = tuple[str, Callable[[], AbstractAsyncContextManager[targets.Target]]]


@dataclass(frozen=True)
class Sizes:
    """Requests per phase (`--sizes c1=200,stream=100,c16=800,c64=1200,events=100`)."""

    c1: int = 200
    stream: int = 100
    c16: int = 800
    c64: int = 1200
    events: int = 100

    @classmethod
    def parse(cls, text: str | None) -> Sizes:
        if not text:
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, int] = {}
        for item in text.split(","):
            key, _, value = item.partition("=")
            if key.strip() not in known or not value.strip().isdigit() or int(value) < 1:
                raise BenchError(f"bad size {item!r}; expected e.g. c1=200 (keys: {known})")
            values[key.strip()] = int(value)
        return cls(**values)


# (phase, which request, concurrency, which size)
PHASES: tuple[tuple[str, str, int, str], ...] = (
    ("c1", "turn", 1, "c1"),
    ("stream", "stream", 1, "stream"),
    ("c16", "turn", 16, "c16"),
    ("c64", "turn", 64, "c64"),
)


@dataclass
class Figures:
    name: str
    phases: dict[str, load.Phase] = field(default_factory=dict)
    delivery: delivery.Delivery | None = None
    error: str | None = None


async def _measure(group: list[targets.Target], sizes: Sizes, out: dict[str, Figures]) -> None:
    """Each phase for each target of the group in turn, then event delivery (Chatter)."""
    for target in group:
        out[target.name] = Figures(target.name)
    for phase, kind, concurrency, size in PHASES:
        for target in group:
            figures = out[target.name]
            if figures.error:
                continue
            request = target.turn if kind == "turn" else target.stream
            total = getattr(sizes, size)
            label = f"{target.name}: {phase}, {total} requests at concurrency {concurrency}"
            with console.status(label):
                try:
                    measured = await load.run(request, total, concurrency, target.cpu)
                except BenchError as exc:
                    figures.error = f"{phase}: {exc}"
                    console.print(f"[red]{target.name} failed in {phase}:[/red] {exc}")
                    continue
            figures.phases[phase] = measured
            _print_phase(target.name, phase, measured)
    for target in group:
        if target.events_url is None or out[target.name].error:
            continue
        with console.status(f"{target.name}: event delivery over {sizes.events} turns"):
            try:
                out[target.name].delivery = await delivery.measure(target, sizes.events)
            except BenchError as exc:
                console.print(f"[red]{target.name}: event delivery failed:[/red] {exc}")


def _print_phase(name: str, phase: str, measured: load.Phase) -> None:
    line = (
        f"  {name:<20} {phase:<6} {measured.per_s:6.1f}/s  p50 {measured.p(50):6.1f}  "
        f"p99 {measured.p(99):6.1f} ms  cpu {measured.cpu_ms_per_request or 0:5.2f} ms"
    )
    if measured.errors:
        line += f"\n  [red]{measured.errors} failed[/red], e.g. {measured.first_error}"
    console.print(line, highlight=False)


async def _group(
    starters: list[Starter],
    sizes: Sizes,
    out: dict[str, Figures],
) -> None:
    """Start the targets (a failed one is reported and left out), measure, stop them all."""
    async with AsyncExitStack() as stack:
        group = []
        for name, start in starters:
            with console.status(f"starting {name}"):
                try:
                    group.append(await stack.enter_async_context(start()))
                except BenchError as exc:
                    console.print(f"[red]{name} did not start:[/red] {exc}")
                    out[name] = Figures(name, error=f"did not start: {exc}")
        await _measure(group, sizes, out)


@asynccontextmanager
async def _direct(upstream: Server) -> AsyncIterator[targets.Target]:
    yield targets.openai_target("direct", upstream, {})


@asynccontextmanager
async def _chatter(
    name: str,
    kind: str,
    upstream: Server,
    workdir: Path,
    workers: int = 1,
    redis: str | None = None,
) -> AsyncIterator[targets.Target]:
    async with (
        targets.database(kind, workdir) as url,
        targets.chatter(name, url, upstream, workdir, workers, redis) as target,
    ):
        yield target


async def main(peer_name: str | None = None, sizes_text: str | None = None) -> dict[str, Any]:
    """Measure every target; print the table and return the figures (for the JSON file)."""
    sizes = Sizes.parse(sizes_text)
    if peer_name is not None and peer_name not in peer.PEERS:
        raise BenchError(f"unknown peer {peer_name!r}; choose from {', '.join(peer.PEERS)}")
    if peer_name:
        peer.install(console)  # before anything runs: the first time takes a while
    out: dict[str, Figures] = {}
    postgres = os.environ.get("CHATTER_TEST_DATABASE_URL")
    redis = os.environ.get("CHATTER_TEST_REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="chatter-bench-") as tmp:
        workdir = Path(tmp)
        async with targets.fake_upstream(workdir) as upstream:
            sqlite = "chatter-sqlite-1w"
            first: list[Starter] = [
                ("direct", partial(_direct, upstream)),
                (sqlite, partial(_chatter, sqlite, "sqlite", upstream, workdir)),
            ]
            if peer_name:
                first.append((peer_name, partial(peer.litellm, upstream, workdir, console)))
            await _group(first, sizes, out)
            for workers in (1, 2) if postgres else ():
                name = f"chatter-postgres-{workers}w"
                bus = redis if workers > 1 else None
                start = partial(_chatter, name, str(postgres), upstream, workdir, workers, bus)
                await _group([(name, start)], sizes, out)
    return report.render(console, out, sizes, peer_name)

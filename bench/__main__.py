"""`make bench`: run every benchmark, or only those named (`python -m bench analytics`,
`make bench BENCH=analytics`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from bench import analytics_scale, chat_overhead

BENCHMARKS: dict[str, Callable[[], Awaitable[None]]] = {
    "chat": chat_overhead.main,  # chat turn overhead, then event delivery latency
    "analytics": analytics_scale.main,  # analytics endpoints over 1,000,000 LLM calls
}


def main(names: list[str]) -> None:
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in names or BENCHMARKS:
        asyncio.run(BENCHMARKS[name]())


if __name__ == "__main__":
    main(sys.argv[1:])

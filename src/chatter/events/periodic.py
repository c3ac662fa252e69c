"""Background upkeep: a step run every so often until the owner stops it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from chatter.observability.logging import get_logger

log = get_logger("chatter.periodic")


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    stopping: asyncio.Event,
    *,
    failure: str,
) -> None:
    """Wait `interval_s`, run `step`, again, until `stopping` is set. A step that fails
    (a database or bus outage) is logged as `failure` and tried again next time; stopping
    takes effect at the next wait, never in the middle of a step's transaction."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval_s)
        if stopping.is_set():
            return
        try:
            await step()
        except Exception:
            log.exception(failure, step=getattr(step, "__name__", "step"))

"""Work that must finish once started, whoever waits for it goes away
(docs/accounting.md: "a close, once started, finishes")."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from chatter.observability.logging import get_logger

log = get_logger("chatter.completion")
T = TypeVar("T")


class CompletionGuard:
    """Runs coroutines in tasks of their own that a caller's cancellation cannot abandon,
    and remembers the unfinished ones so shutdown can wait for them."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[Any]] = set()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` to its end. A cancellation of the caller is re-raised only once
        `coro` has finished, so the caller never returns while the work is half done."""
        task = asyncio.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        cancelled: asyncio.CancelledError | None = None
        while True:
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError as exc:
                if task.done():
                    raise
                cancelled = exc
            else:
                break
        if cancelled is not None:
            raise cancelled
        return result

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: let started work finish (recovery at the next start handles the
        rest)."""
        if not self._pending:
            return
        _, unfinished = await asyncio.wait(set(self._pending), timeout=timeout_s)
        if unfinished:
            log.warning("shutdown_left_unfinished_work", count=len(unfinished))

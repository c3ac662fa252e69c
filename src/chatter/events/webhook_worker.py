"""The webhook loops of one process: the dispatcher turns committed events into
deliveries (woken by the bus, or by its poll when the bus is quiet or down), the sender
delivers them, and old finished deliveries are cleaned up. Any number of workers may run
them against one database: the cursor and the claims are locked rows."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.events.bus import EventBus
from chatter.events.periodic import every
from chatter.events.webhook_sender import WebhookSender
from chatter.observability.logging import get_logger
from chatter.settings import WebhookSettings
from chatter.storage import webhooks as store

log = get_logger("chatter.webhooks")
# Only a wake-up signal: what was published is read back from the events table.
WAKE_QUEUE = 1_000
CLEANUP_INTERVAL_S = 3600.0
# A loop's current database step may take up to the pool timeout; past this, cancel.
STOP_TIMEOUT_S = 60.0


class WebhookWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        settings: WebhookSettings,
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._settings = settings
        self.sender = WebhookSender(sessions, settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._dispatch_loop()),
            asyncio.create_task(self.sender.run()),
            asyncio.create_task(self._cleanup_loop()),
        ]

    async def aclose(self) -> None:
        """Stop the loops at their next wait rather than cancel them: a transaction
        cancelled midway can leave its connection (and SQLite's write lock) behind."""
        self._stopping.set()
        self.sender.stop()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.gather(*self._tasks)
        except TimeoutError:  # a database step that never ends: give up on it
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.sender.aclose()

    async def dispatch_once(self) -> store.Dispatched:
        async with self._sessions() as session:
            dispatched = await store.dispatch(session, batch=self._settings.batch_size)
            await session.commit()
        if dispatched.deliveries:
            self.sender.wake()
        return dispatched

    async def _dispatch_loop(self) -> None:
        with self._bus.subscribe(WAKE_QUEUE) as published:
            while not self._stopping.is_set():
                published.drain()
                try:
                    dispatched = await self.dispatch_once()
                except Exception:  # a database outage: try again at the next poll
                    log.exception("webhook_dispatch_failed")
                    dispatched = store.Dispatched(0, more_waiting=False)
                if dispatched.more_waiting:
                    continue
                poll = self._settings.poll_interval_s
                if dispatched.any_webhooks:
                    await _first_of(poll, published.get(), self._stopping.wait())
                else:
                    # Nobody to deliver to: the poll alone keeps the cursor moving, so a
                    # chat turn's events cost no dispatch transaction of their own.
                    await _first_of(poll, self._stopping.wait())

    async def _cleanup_loop(self) -> None:
        await every(
            CLEANUP_INTERVAL_S, self.cleanup_once, self._stopping, failure="webhook_cleanup_failed"
        )

    async def cleanup_once(self) -> int:
        cutoff = utcnow() - timedelta(days=self._settings.log_retention_days)
        async with self._sessions() as session:
            deleted = await store.delete_finished_before(session, cutoff)
            await session.commit()
        if deleted:
            log.info("webhook_deliveries_cleaned_up", count=deleted)
        return deleted


async def _first_of(timeout_s: float, *waits: Coroutine[Any, Any, object]) -> None:
    """Wait until one of `waits` is done or `timeout_s` passed; drop the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()

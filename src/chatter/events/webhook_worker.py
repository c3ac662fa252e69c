"""The webhook loops of one process: the dispatcher turns committed events into
deliveries (woken by the bus, or by its poll when the bus is quiet or down), the sender
delivers them, and old finished deliveries are cleaned up. Any number of workers may run
them against one database: the cursor and the claims are locked rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.events.bus import EventBus
from chatter.events.webhook_sender import WebhookSender
from chatter.observability.logging import get_logger
from chatter.settings import WebhookSettings
from chatter.storage import webhooks as store

log = get_logger("chatter.webhooks")
# Only a wake-up signal: what was published is read back from the events table.
WAKE_QUEUE = 1_000
CLEANUP_INTERVAL_S = 3600.0


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

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._dispatch_loop()),
            asyncio.create_task(self.sender.run()),
            asyncio.create_task(_every(CLEANUP_INTERVAL_S, self.cleanup_once)),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
            while True:
                published.drain()
                try:
                    dispatched = await self.dispatch_once()
                except Exception:  # a database outage: try again at the next poll
                    log.exception("webhook_dispatch_failed")
                    dispatched = store.Dispatched(0, more_waiting=False)
                if dispatched.more_waiting:
                    continue
                if not dispatched.any_webhooks:
                    # Nobody to deliver to: the poll alone keeps the cursor moving, so a
                    # chat turn's events cost no dispatch transaction of their own.
                    await asyncio.sleep(self._settings.poll_interval_s)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_interval_s):
                        await published.get()

    async def cleanup_once(self) -> int:
        cutoff = utcnow() - timedelta(days=self._settings.log_retention_days)
        async with self._sessions() as session:
            deleted = await store.delete_finished_before(session, cutoff)
            await session.commit()
        if deleted:
            log.info("webhook_deliveries_cleaned_up", count=deleted)
        return deleted


async def _every(interval_s: float, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception:  # a database outage: try again next time
            log.exception("webhook_maintenance_failed")

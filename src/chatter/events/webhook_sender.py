"""Deliveries to webhook receivers: claim what is due, POST it signed, log the attempt,
schedule the retry. Attempts run in parallel under a concurrency limit (and a smaller one
per webhook), each bounded by a timeout, so a slow or dead receiver holds only its own
slots; no database transaction is open during a POST."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.domain.enums import WebhookDeliveryStatus
from chatter.domain.events import UnifiedEvent
from chatter.domain.webhooks import (
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    retry_delay_s,
    signature_header,
)
from chatter.errors import WebhookUrlRefused
from chatter.events.webhook_targets import resolve_target
from chatter.observability.logging import get_logger
from chatter.settings import WebhookSettings
from chatter.storage import webhooks as store
from chatter.storage.webhooks import AttemptOutcome, DueDelivery

log = get_logger("chatter.webhooks")
USER_AGENT = "Chatter-Webhooks/1"
# A claimed delivery is left alone this long beyond the attempt's own timeout; a worker
# that died mid-attempt has its deliveries retried after it.
LEASE_MARGIN_S = 60.0
MAX_ERROR_CHARS = 500


class WebhookSender:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: WebhookSettings
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = httpx.AsyncClient(
            timeout=settings.timeout_s,
            follow_redirects=False,  # a redirect could point anywhere, private networks too
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=settings.concurrency),
        )
        self._in_flight: Counter[str] = Counter()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._attempts: set[asyncio.Task[AttemptOutcome]] = set()
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """New deliveries may be due: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Let `run` return at its next wait (never in the middle of a transaction)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.claim()
            except Exception:  # a database outage: try again at the next poll
                log.exception("webhook_claim_failed")
                claimed = []
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(delivery))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
            if claimed and self._free_slots() > 0:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_interval_s):
                    await self._wake.wait()

    async def aclose(self) -> None:
        """After `run` returned: cut off the POSTs in flight (they are retried once their
        lease runs out) but let attempts already being recorded commit - a transaction
        cancelled midway could leave SQLite locked."""
        self.stop()
        for attempt in list(self._attempts):
            attempt.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await self._client.aclose()

    def _free_slots(self) -> int:
        return self._settings.concurrency - sum(self._in_flight.values())

    async def claim(self) -> list[DueDelivery]:
        free = self._free_slots()
        if free <= 0:
            return []
        now = utcnow()
        lease = timedelta(seconds=self._settings.timeout_s + LEASE_MARGIN_S)
        async with self._sessions() as session:
            claimed = await store.claim_due(
                session,
                now=now,
                lease_until=now + lease,
                limit=min(free, self._settings.batch_size),
                per_webhook=self._settings.per_webhook_concurrency,
                in_flight=self._in_flight,
            )
            await session.commit()
        for delivery in claimed:
            self._in_flight[delivery.webhook_id] += 1
        return claimed

    async def _deliver(self, delivery: DueDelivery) -> None:
        attempt = asyncio.create_task(self.attempt(delivery))
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)
        try:
            try:
                outcome = await attempt
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                return  # only the POST was cut off (shutdown): nothing to record
            await self._record(delivery, outcome)
        except Exception:  # the log write failed: the lease runs out and it is retried
            log.exception("webhook_delivery_failed", delivery_id=delivery.id)
        finally:
            self._in_flight[delivery.webhook_id] -= 1
            if self._in_flight[delivery.webhook_id] <= 0:
                del self._in_flight[delivery.webhook_id]
            self._wake.set()  # a slot is free

    async def attempt(self, delivery: DueDelivery) -> AttemptOutcome:
        if delivery.event is None:
            return AttemptOutcome(None, 0, "The event is no longer stored (retention).")
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                status_code = await self._post(delivery, delivery.event)
        except TimeoutError:
            error = f"No answer within {self._settings.timeout_s:g} s."
        except WebhookUrlRefused as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if status_code is not None and not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        latency_ms = int((time.monotonic() - started) * 1000)
        return AttemptOutcome(status_code, latency_ms, error and error[:MAX_ERROR_CHARS])

    async def _post(self, delivery: DueDelivery, event: UnifiedEvent) -> int:
        # Checked again at each attempt: the name may now resolve somewhere else.
        target = await resolve_target(
            delivery.url, allow_private=self._settings.allow_private_targets
        )
        body = json.dumps(event.to_json(), separators=(",", ":")).encode()
        headers = {
            **target.headers(),
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(delivery.secret, int(time.time()), body),
            EVENT_ID_HEADER: str(event.id),
            EVENT_TYPE_HEADER: event.type.value,
            DELIVERY_ID_HEADER: delivery.id,
        }
        request = self._client.build_request(
            "POST", target.url, content=body, headers=headers, extensions=target.extensions()
        )
        # Streamed and closed unread: only the status matters, and a receiver answering
        # with a huge body must not cost memory.
        response = await self._client.send(request, stream=True)
        await response.aclose()
        return response.status_code

    async def _record(self, delivery: DueDelivery, outcome: AttemptOutcome) -> None:
        now = utcnow()
        next_attempt_at = now
        if outcome.error is None:
            status = WebhookDeliveryStatus.SUCCEEDED
        elif delivery.attempt >= self._settings.max_attempts or delivery.event is None:
            status = WebhookDeliveryStatus.FAILED
        else:
            status = WebhookDeliveryStatus.PENDING
            delay = retry_delay_s(
                delivery.attempt,
                base_s=self._settings.retry_base_s,
                factor=self._settings.retry_factor,
                max_s=self._settings.retry_max_s,
            )
            next_attempt_at = now + timedelta(seconds=delay)
        async with self._sessions() as session:
            await store.record_attempt(
                session,
                delivery,
                outcome,
                status=status,
                next_attempt_at=next_attempt_at,
                now=now,
            )
            await session.commit()
        log.info(
            "webhook_attempt",
            delivery_id=delivery.id,
            webhook_id=delivery.webhook_id,
            attempt=delivery.attempt,
            status=status.value,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
        )

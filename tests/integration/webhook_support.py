"""What the webhook tests share: fast settings, writing events the way the services do,
and a receiver's signature check written as the README shows it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import httpx
from fastapi import FastAPI

from chatter.container import Container
from chatter.domain.events import DomainEvent, EventType, UnifiedEvent
from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage import outbox
from conftest import Actor, make_settings

TIMEOUT_S = 2.0
MAX_ATTEMPTS = 4


def webhook_settings(database_url: str) -> Settings:
    """Fast loops, tiny backoff, and receivers on 127.0.0.1 allowed."""
    return make_settings(
        database_url,
        webhooks={
            "allow_private_targets": True,
            "timeout_s": TIMEOUT_S,
            "max_attempts": MAX_ATTEMPTS,
            "retry_base_s": 0.05,
            "retry_factor": 2,
            "poll_interval_s": 0.05,
            "concurrency": 6,
            "per_webhook_concurrency": 2,
        },
    )


def path() -> str:
    return f"/hook/{new_id().lower()}"


async def emit(app: FastAPI, user_id: str | None, type: EventType, **data: Any) -> UnifiedEvent:
    """Commit an event the way the services do, then publish it."""
    container: Container = app.state.container
    event = DomainEvent(type, correlation_id=f"corr-{new_id()}", user_id=user_id, data=data)
    async with container.sessions() as session:
        (stored,) = await outbox.write_events(session, [event])
        await session.commit()
    await container.publisher.published([stored])
    return stored


async def create(
    client: httpx.AsyncClient, actor: Actor, url: str, **fields: Any
) -> dict[str, Any]:
    created = await client.post(
        "/api/v1/webhooks", json={"url": url, **fields}, headers=actor.headers
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


async def log_of(client: httpx.AsyncClient, actor: Actor, hook_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=actor.headers)
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


async def wait_for_status(
    client: httpx.AsyncClient, actor: Actor, hook_id: str, status: str, timeout_s: float = 10
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        log = await log_of(client, actor, hook_id)
        if log and all(d["status"] == status for d in log):
            return log
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.02)


def verify(secret: str, header: str, body: bytes) -> bool:
    """The README's five lines, as a receiver writes them."""
    parts = dict(p.split("=", 1) for p in header.split(","))  # t=<unix time>,v1=<hex>
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    fresh = abs(time.time() - int(parts["t"])) < 300  # refuse replays older than 5 minutes
    return fresh and hmac.compare_digest(mac.hexdigest(), parts["v1"])

"""Webhook deliveries over real HTTP: a receiver on 127.0.0.1 (allowed by the test
settings) gets signed deliveries, retried with backoff and logged; a slow receiver never
delays a healthy one; each webhook gets only its owner's events of the types it asked for;
two workers on one database deliver each event once."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from webhook_support import (
    MAX_ATTEMPTS,
    TIMEOUT_S,
    create,
    emit,
    log_of,
    path,
    verify,
    wait_for_status,
    webhook_settings,
)

from chatter.container import Container
from chatter.domain.events import EventType
from chatter.settings import Settings
from chatter.storage.models import User, WebhookCursor, WebhookDelivery
from conftest import UserFactory, running_app
from fakes.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return webhook_settings(database_url)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


async def test_a_delivery_is_signed_and_carries_the_event(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    hook_path = path()
    hook = await create(client, user, receiver.url(hook_path))
    event = await emit(app, user.id, EventType.WORKFLOW_COMPLETED, total_tokens=42)

    (got,) = await receiver.wait_for(hook_path, 1)
    assert got.headers["content-type"] == "application/json"
    assert verify(hook["secret"], got.headers["x-chatter-signature"], got.body)
    assert not verify("whsec_wrong", got.headers["x-chatter-signature"], got.body)
    assert not verify(hook["secret"], got.headers["x-chatter-signature"], got.body + b" ")
    assert json.loads(got.body) == json.loads(json.dumps(event.to_json()))
    assert got.headers["x-chatter-event-id"] == str(event.id)
    assert got.headers["x-chatter-event-type"] == "workflow_completed"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"

    (delivery,) = await wait_for_status(client, user, hook["id"], "succeeded")
    assert delivery["event_id"] == event.id
    assert delivery["event_type"] == "workflow_completed"
    assert delivery["attempt_count"] == 1
    assert delivery["next_attempt_at"] is None
    assert got.headers["x-chatter-delivery-id"] == delivery["id"]
    (attempt,) = delivery["attempts"]
    assert attempt["attempt"] == 1
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["latency_ms"] >= 0


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    hook_path = path()
    receiver.script(hook_path, 500, 503)
    hook = await create(client, user, receiver.url(hook_path))
    event = await emit(app, user.id, EventType.WORKFLOW_FAILED, error={"code": "x"})

    tries = await receiver.wait_for(hook_path, 3)
    assert [t.status for t in tries] == [500, 503, 200]
    assert {t.headers["x-chatter-event-id"] for t in tries} == {str(event.id)}
    assert all(verify(hook["secret"], t.headers["x-chatter-signature"], t.body) for t in tries)
    # Exponential backoff: 0.05 s after the first failure, 0.1 s after the second.
    assert tries[1].at - tries[0].at >= 0.04
    assert tries[2].at - tries[1].at >= 0.09

    (delivery,) = await wait_for_status(client, user, hook["id"], "succeeded")
    assert delivery["attempt_count"] == 3
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (1, 500, "HTTP 500"),
        (2, 503, "HTTP 503"),
        (3, 200, None),
    ]
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] is None


async def test_a_receiver_that_never_recovers_is_given_up_after_the_limit(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    hook_path = path()
    receiver.script(hook_path, *[500] * 10)
    hook = await create(client, user, receiver.url(hook_path))
    await emit(app, user.id, EventType.WORKFLOW_COMPLETED)

    (delivery,) = await wait_for_status(client, user, hook["id"], "failed")
    assert delivery["attempt_count"] == MAX_ATTEMPTS
    assert [a["attempt"] for a in delivery["attempts"]] == list(range(1, MAX_ATTEMPTS + 1))
    assert delivery["last_error"] == "HTTP 500"
    assert delivery["finished_at"] is not None
    await asyncio.sleep(0.3)  # no attempt after giving up
    assert len(receiver.requests_to(hook_path)) == MAX_ATTEMPTS
    failed = await client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries",
        params={"status": "succeeded"},
        headers=user.headers,
    )
    assert failed.json()["items"] == []


async def test_a_slow_receiver_does_not_delay_a_healthy_one(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    slow_path, healthy_path = path(), path()
    receiver.slow(slow_path, 30)
    slow = await create(client, user, receiver.url(slow_path))
    await create(client, user, receiver.url(healthy_path))

    started = time.monotonic()
    for n in range(8):
        await emit(app, user.id, EventType.MESSAGE_CREATED, n=n)
    got = await receiver.wait_for(healthy_path, 8, timeout_s=TIMEOUT_S * 4)
    # Every event reached the healthy receiver before the slow one's first attempt even
    # timed out: the slow one holds its own slots (2 of 6), never the others'.
    assert time.monotonic() - started < TIMEOUT_S
    assert len(got) == 8
    assert len(receiver.requests_to(slow_path)) <= 2

    log = await wait_for_status(client, user, slow["id"], "pending", timeout_s=TIMEOUT_S * 3)
    deadline = time.monotonic() + TIMEOUT_S * 3
    while not any(d["attempts"] for d in log):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
        log = await log_of(client, user, slow["id"])
    timed_out = [a for d in log for a in d["attempts"]]
    assert timed_out[0]["error"] == f"No answer within {TIMEOUT_S:g} s."
    assert timed_out[0]["status_code"] is None
    assert timed_out[0]["latency_ms"] >= TIMEOUT_S * 1000 - 50
    await client.delete(f"/api/v1/webhooks/{slow['id']}", headers=user.headers)


async def test_webhooks_get_their_owners_events_of_their_types_after_creation(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    receiver: WebhookReceiver,
) -> None:
    alice, bob = await make_user(), await make_user()
    before = await emit(app, alice.id, EventType.WORKFLOW_FAILED)
    everything, failures, bobs = path(), path(), path()
    all_hook = await create(client, alice, receiver.url(everything))
    failed_hook = await create(
        client, alice, receiver.url(failures), event_types=["workflow_failed"]
    )
    bob_hook = await create(client, bob, receiver.url(bobs))

    completed = await emit(app, alice.id, EventType.WORKFLOW_COMPLETED)
    bobs_event = await emit(app, bob.id, EventType.WORKFLOW_FAILED)
    failed = await emit(app, alice.id, EventType.WORKFLOW_FAILED)
    system = await emit(app, None, EventType.WORKFLOW_FAILED)
    barrier = await emit(app, bob.id, EventType.WORKFLOW_COMPLETED)

    await receiver.wait_for(bobs, 2)
    # Events are dispatched in id order: once the last one is delivered, the earlier ones
    # have been matched against every webhook.
    assert {d["event_id"] for d in await log_of(client, bob, bob_hook["id"])} == {
        bobs_event.id,
        barrier.id,
    }
    assert {d["event_id"] for d in await log_of(client, alice, all_hook["id"])} == {
        completed.id,
        failed.id,
    }
    assert [d["event_id"] for d in await log_of(client, alice, failed_hook["id"])] == [failed.id]
    got = await receiver.wait_for(failures, 1)
    assert [json.loads(r.body)["id"] for r in got] == [failed.id]
    assert before.id < completed.id
    assert system.id < barrier.id


async def test_an_admin_may_receive_every_users_events(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    receiver: WebhookReceiver,
    engine: AsyncEngine,
) -> None:
    admin, user = await make_user(), await make_user()
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == admin.id).values(role="admin"))
    hook_path = path()
    hook = await create(client, admin, receiver.url(hook_path), all_users=True)
    assert hook["all_users"] is True

    events = [
        await emit(app, user.id, EventType.WORKFLOW_STARTED),
        await emit(app, None, EventType.LOGIN_FAILED, email="x@example.com"),
        await emit(app, admin.id, EventType.WORKFLOW_STARTED),
    ]
    got = await receiver.wait_for(hook_path, 3)
    assert sorted(json.loads(r.body)["id"] for r in got) == [e.id for e in events]


async def test_deleting_a_webhook_stops_its_deliveries_and_removes_its_log(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    hook_path, witness_path = path(), path()
    hook = await create(client, user, receiver.url(hook_path))
    await create(client, user, receiver.url(witness_path))
    await emit(app, user.id, EventType.WORKFLOW_COMPLETED)
    await receiver.wait_for(hook_path, 1)
    await wait_for_status(client, user, hook["id"], "succeeded")

    assert (
        await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=user.headers)
    ).status_code == 204
    await emit(app, user.id, EventType.WORKFLOW_COMPLETED)
    await receiver.wait_for(witness_path, 2)
    assert len(receiver.requests_to(hook_path)) == 1
    gone = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=user.headers)
    assert gone.status_code == 404


async def test_two_workers_deliver_each_event_exactly_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    receiver: WebhookReceiver,
    settings: Settings,
) -> None:
    user = await make_user()
    hook_path = path()
    hook = await create(client, user, receiver.url(hook_path))
    async with running_app(settings) as (second, _client):
        events = []
        for n in range(20):
            events.append(await emit(app if n % 2 else second, user.id, EventType.TOOL_CALLED))
        got = await receiver.wait_for(hook_path, 20)
        await asyncio.sleep(0.3)  # time for a doubled delivery to show up
    got = receiver.requests_to(hook_path)
    assert sorted(int(r.headers["x-chatter-event-id"]) for r in got) == [e.id for e in events]

    # Dispatching the same events again (a cursor moved back) adds no delivery.
    container: Container = app.state.container
    async with container.sessions() as session:
        await session.execute(update(WebhookCursor).values(last_event_id=events[0].id - 1))
        await session.commit()
    await container.webhook_worker.dispatch_once()
    page = await client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries", params={"limit": 100}, headers=user.headers
    )
    assert len(page.json()["items"]) == 20
    assert {d["attempt_count"] for d in page.json()["items"]} == {1}


async def test_a_dead_receiver_is_logged_and_a_chat_turn_does_not_wait_for_webhooks(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    dead = await create(client, user, dead_url)
    slow_path = path()
    receiver.slow(slow_path, 30)
    slow = await create(client, user, receiver.url(slow_path))
    for n in range(10):
        await emit(app, user.id, EventType.MESSAGE_CREATED, n=n)
    await receiver.wait_for(slow_path, 1)

    started = time.monotonic()
    turn = await client.post("/api/v1/chat", json={"message": "hello"}, headers=user.headers)
    assert turn.status_code == 200, turn.text
    # Deliveries run beside the request: the turn is not held by a receiver's timeout.
    assert time.monotonic() - started < TIMEOUT_S

    log = await wait_for_status(client, user, dead["id"], "failed")
    errors = {a["error"] for d in log for a in d["attempts"]}
    assert all(e.startswith("ConnectError") for e in errors), errors
    for hook in (dead, slow):
        await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=user.headers)


async def test_the_address_is_checked_again_at_delivery(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    receiver: WebhookReceiver,
    settings: Settings,
) -> None:
    user = await make_user()
    hook_path = path()
    hook = await create(client, user, receiver.url(hook_path))
    # As if the name now resolved into the private network (DNS rebinding): the check at
    # delivery time refuses it, and no request leaves.
    settings.webhooks.allow_private_targets = False
    try:
        await emit(app, user.id, EventType.WORKFLOW_COMPLETED)
        log = await wait_for_status(client, user, hook["id"], "failed")
    finally:
        settings.webhooks.allow_private_targets = True
    assert receiver.requests_to(hook_path) == []
    errors = [a["error"] for d in log for a in d["attempts"]]
    assert len(errors) == MAX_ATTEMPTS
    assert all("private" in e for e in errors), errors


async def test_finished_deliveries_leave_the_log_after_its_retention(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    receiver: WebhookReceiver,
    engine: AsyncEngine,
) -> None:
    user = await make_user()
    hook_path = path()
    hook = await create(client, user, receiver.url(hook_path))
    await emit(app, user.id, EventType.WORKFLOW_COMPLETED)
    (delivery,) = await wait_for_status(client, user, hook["id"], "succeeded")
    old = datetime.now(UTC) - timedelta(days=8)
    async with engine.begin() as connection:
        await connection.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery["id"])
            .values(created_at=old)
        )
    container: Container = app.state.container
    assert await container.webhook_worker.cleanup_once() >= 1
    assert await log_of(client, user, hook["id"]) == []

"""A chat turn announces its life as events, written with the state they describe and
published after commit; a publish that fails is relayed from the table, once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.container import Container
from chatter.domain.clock import utcnow
from chatter.domain.events import DomainEvent, EventType, UnifiedEvent
from chatter.events.bus import EventBus, Subscription
from chatter.services.chat import ChatRequest
from chatter.settings import Settings
from chatter.storage import outbox
from chatter.storage.models import Event, User
from chatter.workflows.events import TextDelta
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    # Background relay and marking stay idle: these tests call them explicitly.
    events = {"relay_grace_s": 0, "relay_interval_s": 3600, "mark_interval_s": 3600}
    return openai_settings(database_url, fake_openai, llm={"max_retries": 0}, events=events)


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


def container_of(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


async def events_of(engine: AsyncEngine, correlation_id: str) -> list[Any]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Event).where(Event.correlation_id == correlation_id).order_by(Event.id)
        )
        return list(rows.all())


def lifecycle(events: Sequence[Any]) -> list[str]:
    skip = {"message_created", "conversation_updated", "node_started", "node_finished"}
    return [event.type for event in events if event.type not in skip]


async def test_a_tool_turn_announces_each_step_in_order(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(
        FakeReply(
            content="", tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}]
        ),
        FakeReply(content="42"),
    )
    headers = {**alice.headers, "X-Correlation-ID": "tool-turn-events"}
    response = await client.post(
        "/api/v1/chat", json={"message": "6*7?", "workflow": "chat_with_tools"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    events = await events_of(engine, "tool-turn-events")
    assert lifecycle(events) == [
        "workflow_started",
        "llm_call_completed",
        "tool_called",
        "llm_call_completed",
        "workflow_completed",
        "usage_recorded",
    ]
    assert all(e.user_id == alice.id for e in events)
    assert all(e.execution_id == body["execution"]["id"] for e in events)
    tool = next(e for e in events if e.type == "tool_called")
    assert tool.data["name"] == "calculator"
    assert tool.data["status"] == "ok"
    assert tool.data["result"] == "42"
    completed = events[[e.type for e in events].index("workflow_completed")]
    assert completed.data["total_tokens"] == body["execution"]["total_tokens"]
    assert completed.data["llm_call_count"] == 2
    calls = [e for e in events if e.type == "llm_call_completed"]
    assert sum(c.data["total_tokens"] for c in calls) == completed.data["total_tokens"]
    updated = [e for e in events if e.type == "conversation_updated"][-1]
    assert updated.data["total_tokens"] == body["conversation"]["total_tokens"]
    created = [e.data["role"] for e in events if e.type == "message_created"]
    assert created == ["user", "tool", "assistant"]
    recorded = next(e for e in events if e.type == "usage_recorded")
    assert recorded.data["requests"] == 2
    assert recorded.data["tool_calls"] == 1
    assert recorded.data["total_tokens"] == completed.data["total_tokens"]
    assert recorded.data["cost"] == completed.data["cost"]
    await assert_invariants(engine)


async def test_a_failing_provider_announces_workflow_failed(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(status=500, error_message="upstream down"))
    headers = {**alice.headers, "X-Correlation-ID": "failing-turn-events"}
    response = await client.post("/api/v1/chat", json={"message": "hi"}, headers=headers)
    assert response.status_code == 502
    events = await events_of(engine, "failing-turn-events")
    assert lifecycle(events) == [
        "workflow_started",
        "llm_call_completed",
        "workflow_failed",
        "usage_recorded",
    ]
    failed = next(e for e in events if e.type == "workflow_failed")
    assert failed.data["error"]["code"] == "provider_error"
    assert "upstream down" in failed.data["error"]["message"]
    await assert_invariants(engine)


class FlakyBus:
    """The real bus, but its next publish raises: a crash between commit and publish."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.failures = 0

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, events: Sequence[UnifiedEvent]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("bus down")
        await self.inner.publish(events)

    def subscribe(self, max_queued: int = 10_000) -> Subscription:
        return self.inner.subscribe(max_queued)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_publish_that_fails_is_relayed_once(
    app: FastAPI, client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    publisher = container_of(app).publisher
    flaky = FlakyBus(publisher.bus)
    publisher._bus = flaky  # type: ignore[attr-defined]
    try:
        with flaky.subscribe() as subscription:
            await publisher.flush_marks()
            flaky.failures = 1  # the open's publish fails; the rest go through
            headers = {**alice.headers, "X-Correlation-ID": "relayed-turn"}
            response = await client.post("/api/v1/chat", json={"message": "hi"}, headers=headers)
            assert response.status_code == 200
            await publisher.flush_marks()
            live = [e for e in subscription.drain() if e.correlation_id == "relayed-turn"]
            assert "workflow_started" not in [e.type for e in live]
            assert await publisher.relay_once() >= 3  # started, message, conversation
            assert await publisher.relay_once() == 0  # marked: never twice
            relayed = [e for e in subscription.drain() if e.correlation_id == "relayed-turn"]
    finally:
        publisher._bus = flaky.inner  # type: ignore[attr-defined]
    received = live + relayed
    ids = [e.id for e in received]
    assert len(ids) == len(set(ids))
    assert "workflow_started" in [e.type for e in relayed]
    assert sorted(e.type for e in received).count("workflow_completed") == 1


async def test_a_client_leaving_announces_workflow_cancelled(
    app: FastAPI, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.default_reply = FakeReply(content=" ".join(["word"] * 200), chunk_delay_s=0.01)
    chat = container_of(app).chat
    async with container_of(app).sessions() as session:
        user = await session.get(User, alice.id)
        assert user is not None
        admitted = await chat.admit(
            session=session,
            user=user,
            request=ChatRequest(message="long"),
            correlation_id="cancelled-turn",
        )
    stream = chat.stream(admitted)
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    await asyncio.sleep(0)
    events = await events_of(engine, "cancelled-turn")
    assert lifecycle(events) == [
        "workflow_started",
        "llm_call_completed",
        "workflow_cancelled",
        "usage_recorded",
    ]
    await assert_invariants(engine)


async def test_events_older_than_the_retention_are_cleaned_up(
    app: FastAPI, engine: AsyncEngine
) -> None:
    container = container_of(app)
    async with container.sessions() as session:
        old, recent = await outbox.write_events(
            session,
            [
                DomainEvent(EventType.LOGIN_SUCCEEDED, "retention-old"),
                DomainEvent(EventType.LOGIN_SUCCEEDED, "retention-recent"),
            ],
        )
        await session.commit()
    eight_days_ago = utcnow() - timedelta(days=8)
    async with engine.begin() as connection:
        await connection.execute(
            update(Event).where(Event.id == old.id).values(created_at=eight_days_ago)
        )
    assert await container.publisher.cleanup_once() >= 1
    async with engine.connect() as connection:
        left = set(
            await connection.scalars(select(Event.id).where(Event.id.in_([old.id, recent.id])))
        )
    assert left == {recent.id}

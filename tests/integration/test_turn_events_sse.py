"""A subscriber of /api/v1/events over real HTTP follows chat turns as they happen: a tool
turn step by step, a failing provider, a client that leaves - each under its correlation id."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from accounting import assert_invariants
from events_support import Listener, listen
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import read_events

from chatter.settings import Settings
from conftest import Actor, UserFactory, live_server, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

LIFECYCLE = {
    "workflow_started",
    "llm_call_completed",
    "tool_called",
    "workflow_completed",
    "workflow_failed",
    "workflow_cancelled",
}


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai, llm={"max_retries": 0})


@pytest.fixture(scope="module")
async def base_url(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


def steps(listener: Listener, correlation_id: str) -> list[str]:
    return [
        e.event
        for e in listener.events
        if e.data["correlation_id"] == correlation_id and e.event in LIFECYCLE
    ]


def finished(correlation_id: str, last: str) -> Callable[[Listener], bool]:
    return lambda listener: last in steps(listener, correlation_id)


async def test_a_tool_turn_is_followed_live_step_by_step(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(
        FakeReply(
            content="", tool_calls=[{"name": "calculator", "arguments": {"expression": "2^5"}}]
        ),
        FakeReply(content="32"),
    )
    async with (
        listen(base_url, alice.headers) as listener,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        headers = {**alice.headers, "X-Correlation-ID": "sse-tool-turn"}
        response = await http.post(
            "/api/v1/chat", json={"message": "2^5?", "workflow": "chat_with_tools"}, headers=headers
        )
        assert response.status_code == 200, response.text
        await listener.wait_until(finished("sse-tool-turn", "workflow_completed"))
    assert steps(listener, "sse-tool-turn") == [
        "workflow_started",
        "llm_call_completed",
        "tool_called",
        "llm_call_completed",
        "workflow_completed",
    ]
    ids = listener.ids
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    for event in listener.events:
        assert event.id == str(event.data["id"])
        assert event.data["user_id"] == alice.id
    await assert_invariants(engine)


async def test_a_failing_provider_and_a_leaving_client_are_announced(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    async with (
        listen(base_url, alice.headers, params={"category": "workflow"}) as listener,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        fake.enqueue(FakeReply(status=500, error_message="upstream down"))
        headers = {**alice.headers, "X-Correlation-ID": "sse-failing-turn"}
        failed = await http.post("/api/v1/chat", json={"message": "hi"}, headers=headers)
        assert failed.status_code == 502
        await listener.wait_until(finished("sse-failing-turn", "workflow_failed"))

        fake.default_reply = FakeReply(content=" ".join(["word"] * 100), chunk_delay_s=0.02)
        headers = {**alice.headers, "X-Correlation-ID": "sse-leaving-turn"}
        async with http.stream(
            "POST", "/api/v1/chat/stream", json={"message": "long"}, headers=headers
        ) as stream:
            async for event in read_events(stream):
                if event.event == "delta":
                    break  # the client goes away mid-answer
        await listener.wait_until(finished("sse-leaving-turn", "workflow_cancelled"))
    assert steps(listener, "sse-failing-turn") == [
        "workflow_started",
        "llm_call_completed",
        "workflow_failed",
    ]
    failure = next(e for e in listener.events if e.event == "workflow_failed")
    assert failure.data["data"]["error"]["code"] == "provider_error"
    assert steps(listener, "sse-leaving-turn")[0] == "workflow_started"
    assert steps(listener, "sse-leaving-turn")[-1] == "workflow_cancelled"
    assert all(e.data["category"] == "workflow" for e in listener.events)
    await assert_invariants(engine)

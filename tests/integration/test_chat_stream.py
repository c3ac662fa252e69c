"""Streaming chat over SSE against the local fake OpenAI server, through a real uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import SseEvent, read_events

from chatter.settings import Settings
from chatter.storage.models import LLMCall, Message, WorkflowExecution
from conftest import Actor, UserFactory, live_server, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

LONG_TEXT = " ".join(f"word{n}" for n in range(60))


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai, llm={"sse_ping_s": 0.2, "max_retries": 0})


@pytest.fixture(scope="module")
async def base_url(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


async def stream_turn(base_url: str, user: Actor, **body: Any) -> list[SseEvent]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream(
            "POST", "/api/v1/chat/stream", json={"message": "Hi", **body}, headers=user.headers
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in read_events(response)]


def named(events: list[SseEvent], name: str) -> list[Any]:
    return [e.data for e in events if e.event == name]


async def wait_closed(engine: AsyncEngine, execution_id: str) -> WorkflowExecution:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(WorkflowExecution).where(WorkflowExecution.id == execution_id)
                )
            ).one()
        if row.status != "running":
            return row  # type: ignore[return-value]
        await asyncio.sleep(0.05)
    raise AssertionError("execution stayed running")


async def test_streamed_turn_matches_the_non_streamed_one(
    base_url: str, client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.default_reply = FakeReply(content="The same answer both ways.")
    events = await stream_turn(base_url, alice)
    names = [e.event for e in events if e.event != "comment"]
    assert names[0] == "start"
    assert names[-1] == "done"
    assert "delta" in names
    assert names.index("usage") < names.index("done")
    start = named(events, "start")[0]
    assert set(start) == {"conversation_id", "user_message_id", "execution_id", "correlation_id"}
    assert "".join(d["text"] for d in named(events, "delta")) == "The same answer both ways."
    streamed = named(events, "done")[0]["assistant_message"]
    (usage,) = named(events, "usage")
    assert usage["prompt_tokens"] == streamed["prompt_tokens"] == 11
    assert usage["cached_tokens"] == 4
    plain = await client.post("/api/v1/chat", json={"message": "Hi"}, headers=alice.headers)
    assert plain.status_code == 200
    non_streamed = plain.json()["assistant_message"]
    for field in (
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cost",
        "usage_source",
        "content",
    ):
        assert streamed[field] == non_streamed[field], field
    assert streamed["time_to_first_token_ms"] is not None
    assert streamed["correlation_id"] == start["correlation_id"]


async def test_deltas_arrive_before_the_server_finishes(
    base_url: str, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.default_reply = FakeReply(content=" ".join(["tick"] * 12), chunk_delay_s=0.05)
    events = await stream_turn(base_url, alice)
    first_delta = next(e for e in events if e.event == "delta")
    assert fake.stream_finished_at, "the fake server did not finish its stream"
    assert first_delta.received_at < fake.stream_finished_at[-1]


async def test_ttft_is_stored_on_message_and_call(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.default_reply = FakeReply(content="slow start", delay_s=0.15)
    events = await stream_turn(base_url, alice)
    done = named(events, "done")[0]
    assert done["assistant_message"]["time_to_first_token_ms"] >= 100
    async with engine.connect() as connection:
        call = (
            await connection.execute(
                select(LLMCall).where(LLMCall.execution_id == done["execution"]["id"])
            )
        ).one()
    assert call.time_to_first_token_ms >= 100
    assert call.latency_ms >= call.time_to_first_token_ms


async def test_heartbeats_during_silence(
    base_url: str, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.default_reply = FakeReply(content="after a pause", delay_s=0.7)
    events = await stream_turn(base_url, alice)
    first_delta = next(i for i, e in enumerate(events) if e.event == "delta")
    assert any(e.event == "comment" for e in events[:first_delta])


async def test_tool_events_are_streamed(
    base_url: str, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.enqueue(
        FakeReply(
            content="", tool_calls=[{"name": "calculator", "arguments": {"expression": "2^8"}}]
        ),
        FakeReply(content="256"),
    )
    events = await stream_turn(base_url, alice, workflow="chat_with_tools", message="2^8?")
    (tool_call,) = named(events, "tool_call")
    assert tool_call["name"] == "calculator"
    assert tool_call["arguments"] == {"expression": "2^8"}
    (tool_result,) = named(events, "tool_result")
    assert tool_result["result"] == "256"
    assert len(named(events, "usage")) == 2
    done = named(events, "done")[0]
    assert done["assistant_message"]["total_tokens"] == 36


async def test_client_disconnect_persists_a_partial_message(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.default_reply = FakeReply(content=LONG_TEXT, chunk_delay_s=0.05)
    received: list[str] = []
    execution_id = ""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream(
            "POST", "/api/v1/chat/stream", json={"message": "long please"}, headers=alice.headers
        ) as response,
    ):
        async for event in read_events(response):
            if event.event == "start":
                execution_id = event.data["execution_id"]
            if event.event == "delta":
                received.append(event.data["text"])
            if len(received) >= 5:
                break  # leaving the block closes the connection mid-stream
    execution = await wait_closed(engine, execution_id)
    assert execution.status == "cancelled"
    await fake.wait_for_disconnects(1)
    async with engine.connect() as connection:
        message = (
            await connection.execute(
                select(Message).where(
                    Message.workflow_execution_id == execution_id, Message.role == "assistant"
                )
            )
        ).one()
        call = (
            await connection.execute(select(LLMCall).where(LLMCall.execution_id == execution_id))
        ).one()
    assert message.status == "partial"
    assert message.content.startswith("".join(received))
    assert len(message.content) < len(LONG_TEXT)
    assert message.usage_source == "estimated"
    assert message.prompt_tokens > 0
    assert message.completion_tokens > 0
    assert call.status == "partial"
    assert call.total_tokens == message.total_tokens
    assert execution.total_tokens == message.total_tokens
    await assert_invariants(engine)


async def test_broken_provider_stream(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(content=LONG_TEXT, break_after_chunks=4))
    events = await stream_turn(base_url, alice)
    (error,) = named(events, "error")
    assert error["code"] == "provider_error"
    assert error["message"]
    message = error["assistant_message"]
    assert message["status"] == "error"
    assert message["content"]
    assert LONG_TEXT.startswith(message["content"])
    assert message["usage_source"] == "estimated"
    assert message["completion_tokens"] > 0
    assert error["execution"]["status"] == "failed"
    assert error["execution"]["total_tokens"] == message["total_tokens"]
    await assert_invariants(engine)


async def test_bad_input_is_a_json_error_not_a_stream(base_url: str, alice: Actor) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.post(
            "/api/v1/chat/stream", json={"message": ""}, headers=alice.headers
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"
        response = await http.post(
            "/api/v1/chat/stream", json={"message": "x", "provider": "nope"}, headers=alice.headers
        )
        assert response.status_code == 400


async def test_conversation_with_a_running_turn_cannot_be_deleted(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.default_reply = FakeReply(content=LONG_TEXT, chunk_delay_s=0.02)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream(
            "POST", "/api/v1/chat/stream", json={"message": "go"}, headers=alice.headers
        ) as response,
    ):
        last = ""
        async for event in read_events(response):
            if event.event == "start":
                conversation_id = event.data["conversation_id"]
                refused = await http.delete(
                    f"/api/v1/conversations/{conversation_id}", headers=alice.headers
                )
                assert refused.status_code == 409
                assert refused.json()["error"]["code"] == "conflict"
            if event.event != "comment":  # a heartbeat may still follow `done`
                last = event.event
        assert last == "done"
        deleted = await http.delete(
            f"/api/v1/conversations/{conversation_id}", headers=alice.headers
        )
        assert deleted.status_code == 204
    await assert_invariants(engine)


def _mixed_responder(request: dict[str, Any]) -> FakeReply:
    last = request["messages"][-1]
    text = str(last.get("content") or "")
    if last["role"] == "tool":
        return FakeReply(content=f"The result is {text}.")
    if "fail" in text:
        return FakeReply(status=500, error_message="boom")
    if "break" in text:
        return FakeReply(content=LONG_TEXT, break_after_chunks=3)
    if "tool" in text:
        return FakeReply(
            content="", tool_calls=[{"name": "calculator", "arguments": {"expression": "3*3"}}]
        )
    if "slow" in text:
        return FakeReply(content=LONG_TEXT, chunk_delay_s=0.02)
    return FakeReply(content="plain answer", usage=None if "nousage" in text else _USAGE)


_USAGE = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}


async def test_mixed_parallel_turns_keep_every_invariant(
    base_url: str,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    fake.set_responder(_mixed_responder)
    created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]

    async def plain(message: str, **extra: Any) -> None:
        await client.post(
            "/api/v1/chat",
            json={"message": message, "conversation_id": conversation_id, **extra},
            headers=alice.headers,
        )

    async def streamed(message: str, **extra: Any) -> None:
        await stream_turn(
            base_url, alice, message=message, conversation_id=conversation_id, **extra
        )

    async def cancelled() -> None:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as http,
            http.stream(
                "POST",
                "/api/v1/chat/stream",
                json={"message": "slow", "conversation_id": conversation_id},
                headers=alice.headers,
            ) as response,
        ):
            async for event in read_events(response):
                if event.event == "delta":
                    break

    jobs = []
    for _ in range(3):
        jobs += [
            plain("hello"),
            plain("nousage please"),
            plain("tool please", workflow="chat_with_tools"),
            plain("fail please"),
            streamed("hello"),
            streamed("tool please", workflow="chat_with_tools"),
            streamed("break please"),
            cancelled(),
        ]
    await asyncio.gather(*jobs)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            running = (
                await connection.execute(
                    select(WorkflowExecution.id).where(WorkflowExecution.status == "running")
                )
            ).all()
        if not running:
            break
        await asyncio.sleep(0.05)
    await assert_invariants(engine)
    async with engine.connect() as connection:
        statuses = {
            row.status
            for row in (
                await connection.execute(
                    select(WorkflowExecution.status).where(
                        WorkflowExecution.conversation_id == conversation_id
                    )
                )
            ).all()
        }
    assert statuses == {"completed", "failed", "cancelled"}

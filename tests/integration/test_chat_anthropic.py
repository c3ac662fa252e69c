"""Chat accounting over real HTTP against the local fake Anthropic Messages server.

Chatter always streams from the provider; /api/v1/chat drains the same stream, so every
usage shape is checked through both endpoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import read_events

from chatter.settings import Settings
from chatter.storage.models import LLMCall
from conftest import Actor, UserFactory, anthropic_settings, live_server
from fakes.anthropic_server import AnthropicReply, FakeAnthropicServer

MODEL = "claude-3-5-haiku-latest"
# 100 fresh + 300 read from cache + 50 written to cache (40 for 5 minutes, 10 for an hour).
SPLIT_USAGE: dict[str, Any] = {
    "input_tokens": 100,
    "cache_read_input_tokens": 300,
    "cache_creation_input_tokens": 50,
    "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 10},
    "output_tokens": 25,
}
PLAIN_USAGE: dict[str, Any] = {
    "input_tokens": 100,
    "cache_read_input_tokens": 300,
    "cache_creation_input_tokens": 50,
    "output_tokens": 25,
}
LONG_TEXT = " ".join(f"word{n}" for n in range(40))


@pytest.fixture(scope="module")
def settings(database_url: str, fake_anthropic: FakeAnthropicServer) -> Settings:
    return anthropic_settings(database_url, fake_anthropic)


@pytest.fixture(scope="module")
async def base_url(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture
def claude(fake_anthropic: FakeAnthropicServer) -> Iterator[FakeAnthropicServer]:
    fake_anthropic.reset()
    yield fake_anthropic
    fake_anthropic.reset()


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


def genai_cost(prompt: int, cached: int, written: int, completion: int) -> Decimal:
    usage = PriceUsage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=completion,
    )
    return Decimal(calc_price(usage, MODEL, provider_id="anthropic").total_price)


async def turn(
    base_url: str, user: Actor, endpoint: str, **body: Any
) -> tuple[int, dict[str, Any]]:
    """One turn through /api/v1/chat or /api/v1/chat/stream, as (status, final body): the
    JSON answer, or the `done`/`error` event (status 200 or 502 for a stream)."""
    payload = {"message": "Hi", **body}
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
        if endpoint == "chat":
            response = await http.post("/api/v1/chat", json=payload, headers=user.headers)
            return response.status_code, response.json()
        async with http.stream(
            "POST", "/api/v1/chat/stream", json=payload, headers=user.headers
        ) as response:
            assert response.status_code == 200
            events = [e async for e in read_events(response) if e.event != "comment"]
    last = events[-1]
    assert last.event in ("done", "error"), [e.event for e in events]
    return (200 if last.event == "done" else 502), last.data


def assistant_of(body: dict[str, Any]) -> dict[str, Any]:
    return body["assistant_message"] if "assistant_message" in body else body["error"]


async def calls_of(engine: AsyncEngine, execution_id: str) -> list[Any]:
    async with engine.connect() as connection:
        query = select(LLMCall).where(LLMCall.execution_id == execution_id)
        return list((await connection.execute(query.order_by(LLMCall.created_at))).all())


@pytest.mark.parametrize("endpoint", ["chat", "stream"])
@pytest.mark.parametrize("shape", ["start", "cumulative", "json"])
@pytest.mark.parametrize("usage", [SPLIT_USAGE, PLAIN_USAGE], ids=["ttl-split", "no-split"])
async def test_exact_usage_every_shape(
    base_url: str,
    alice: Actor,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
    endpoint: str,
    shape: str,
    usage: dict[str, Any],
) -> None:
    claude.enqueue(
        AnthropicReply(
            content="Hello from Claude.",
            usage=usage,
            usage_shape="cumulative" if shape == "cumulative" else "start",
            ignore_stream=shape == "json",
        )
    )
    status, body = await turn(base_url, alice, endpoint, provider="anthropic")
    assert status == 200, body
    assistant, execution = body["assistant_message"], body["execution"]
    assert assistant["content"] == "Hello from Claude."
    expected_cost = genai_cost(450, 300, 50, 25)
    for item in (assistant, execution):
        assert item["prompt_tokens"] == 450  # cache reads and writes counted once, in prompt
        assert item["cached_tokens"] == 300
        assert item["completion_tokens"] == 25
        assert item["total_tokens"] == 475
    assert Decimal(assistant["cost"]) == expected_cost
    assert Decimal(execution["total_cost"]) == expected_cost
    assert assistant["usage_source"] == "provider"
    assert assistant["provider_used"] == "anthropic"
    assert assistant["model_used"] == MODEL
    assert assistant["finish_reason"] == "end_turn"
    (call,) = await calls_of(engine, execution["id"])
    assert (call.prompt_tokens, call.cached_tokens, call.completion_tokens) == (450, 300, 25)
    assert call.status == "succeeded"
    assert call.cost == expected_cost
    assert claude.requests[-1]["stream"] is True
    await assert_invariants(engine)


async def test_zero_input_report_is_estimated(
    base_url: str, alice: Actor, claude: FakeAnthropicServer, engine: AsyncEngine
) -> None:
    # A host that loses the input side altogether: never stored as a provider's zero.
    claude.enqueue(AnthropicReply(content="Short.", usage={"input_tokens": 0, "output_tokens": 3}))
    status, body = await turn(base_url, alice, "chat", message="Tell me something short")
    assert status == 200, body
    assistant = body["assistant_message"]
    assert assistant["prompt_tokens"] > 0
    assert assistant["completion_tokens"] == 3
    assert assistant["usage_source"] == "estimated"
    await assert_invariants(engine)


@pytest.mark.parametrize("endpoint", ["chat", "stream"])
async def test_tool_turn_records_both_calls(
    base_url: str, alice: Actor, claude: FakeAnthropicServer, engine: AsyncEngine, endpoint: str
) -> None:
    first = {"input_tokens": 500, "output_tokens": 40}
    second = {"input_tokens": 60, "cache_read_input_tokens": 500, "output_tokens": 12}
    claude.enqueue(
        AnthropicReply(
            content="Let me calculate.",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage=first,
        ),
        AnthropicReply(content="6*7 is 42.", usage=second),
    )
    status, body = await turn(
        base_url, alice, endpoint, message="What is 6*7?", workflow="chat_with_tools"
    )
    assert status == 200, body
    assistant, execution = body["assistant_message"], body["execution"]
    assert assistant["content"] == "6*7 is 42."
    assert assistant["prompt_tokens"] == 500 + 560
    assert assistant["completion_tokens"] == 52
    assert assistant["cached_tokens"] == 500
    expected = genai_cost(500, 0, 0, 40) + genai_cost(560, 500, 0, 12)
    assert Decimal(assistant["cost"]) == expected
    calls = await calls_of(engine, execution["id"])
    assert [c.total_tokens for c in calls] == [540, 572]
    assert [c.finish_reason for c in calls] == ["tool_use", "end_turn"]
    # The second request carried the tool's result back as a tool_result block.
    last_turn = claude.requests[-1]["messages"][-1]
    assert last_turn["role"] == "user"
    (result,) = [b for b in last_turn["content"] if b["type"] == "tool_result"]
    assert "42" in str(result["content"])
    assert claude.requests[0]["tools"][0]["name"] == "calculator"
    await assert_invariants(engine)


@pytest.mark.parametrize("endpoint", ["chat", "stream"])
@pytest.mark.parametrize("status", [529, 500])
async def test_server_errors_are_provider_errors(
    base_url: str,
    alice: Actor,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
    endpoint: str,
    status: int,
) -> None:
    claude.enqueue(AnthropicReply(status=status, error_message=f"upstream says {status}"))
    code, body = await turn(base_url, alice, endpoint)
    assert code == 502, body
    error = body["error"] if endpoint == "chat" else body
    assert error["code"] == "provider_error"
    assert f"upstream says {status}" in error["message"]
    execution_id = (
        error["details"]["execution_id"] if endpoint == "chat" else error["execution"]["id"]
    )
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get(f"/api/v1/executions/{execution_id}", headers=alice.headers)
    execution = response.json()
    assert execution["status"] == "failed"
    assert execution["total_tokens"] == 0
    await assert_invariants(engine)


@pytest.mark.parametrize("endpoint", ["chat", "stream"])
@pytest.mark.parametrize("cleanly", [True, False], ids=["ended", "dropped"])
async def test_stream_cut_midway_is_a_failed_turn(
    base_url: str,
    alice: Actor,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
    endpoint: str,
    cleanly: bool,
) -> None:
    claude.enqueue(AnthropicReply(content=LONG_TEXT, break_after_chunks=5, break_cleanly=cleanly))
    code, body = await turn(base_url, alice, endpoint)
    assert code == 502, body
    if endpoint == "chat":
        error = body["error"]
        async with httpx.AsyncClient(base_url=base_url) as http:
            execution = (
                await http.get(
                    f"/api/v1/executions/{error['details']['execution_id']}", headers=alice.headers
                )
            ).json()
            messages = (
                await http.get(
                    f"/api/v1/conversations/{error['details']['conversation_id']}/messages",
                    headers=alice.headers,
                )
            ).json()["items"]
        assistant = messages[-1]
    else:
        error, execution, assistant = body, body["execution"], body["assistant_message"]
    assert error["code"] == "provider_error"
    assert execution["status"] == "failed"
    assert assistant["role"] == "assistant"
    assert assistant["status"] == "error"
    assert assistant["content"]
    assert LONG_TEXT.startswith(assistant["content"])
    assert assistant["usage_source"] == "estimated"
    assert assistant["prompt_tokens"] > 0
    assert assistant["completion_tokens"] > 0
    (call,) = await calls_of(engine, execution["id"])
    assert call.status == "failed"
    assert call.total_tokens == assistant["total_tokens"] == execution["total_tokens"]
    await assert_invariants(engine)


async def test_concurrent_turns_into_one_conversation(
    base_url: str, alice: Actor, claude: FakeAnthropicServer, engine: AsyncEngine
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        created = await http.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]
    claude.default_reply = AnthropicReply(content="parallel answer", usage=SPLIT_USAGE)
    results = await asyncio.gather(
        *[
            turn(
                base_url,
                alice,
                "stream" if n % 2 else "chat",
                message=f"turn {n}",
                conversation_id=conversation_id,
            )
            for n in range(12)
        ]
    )
    assert [status for status, _ in results] == [200] * 12
    async with httpx.AsyncClient(base_url=base_url) as http:
        conversation = (
            await http.get(f"/api/v1/conversations/{conversation_id}", headers=alice.headers)
        ).json()
    assert conversation["message_count"] == 24
    assert conversation["total_tokens"] == 12 * 475
    assert conversation["cached_tokens"] == 12 * 300
    assert Decimal(conversation["total_cost"]) == 12 * genai_cost(450, 300, 50, 25)
    await assert_invariants(engine)

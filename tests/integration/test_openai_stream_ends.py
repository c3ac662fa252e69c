"""How an OpenAI-compatible stream ends decides how the turn is stored.

A stream that stops before the model said it finished (no `finish_reason`, no `[DONE]`, no
usage chunk) is broken, whether the connection was dropped or the body ended cleanly; a
server that ignores `stream: true` and answers one JSON completion still answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from conftest import Actor, UserFactory, live_server, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

LONG_TEXT = " ".join(f"word{n}" for n in range(40))
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000},
}


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai)


@pytest.fixture(scope="module")
async def base_url(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


async def turn(base_url: str, user: Actor, endpoint: str, **body: Any) -> tuple[int, Any]:
    """(status, body) of /api/v1/chat, or (200/502, data of the final event) of the stream."""
    payload = {"message": "Hi", **body}
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
        if endpoint == "chat":
            response = await http.post("/api/v1/chat", json=payload, headers=user.headers)
            return response.status_code, response.json()
        async with http.stream(
            "POST", "/api/v1/chat/stream", json=payload, headers=user.headers
        ) as response:
            events = [e async for e in read_events(response) if e.event != "comment"]
    assert events[-1].event in ("done", "error"), [e.event for e in events]
    return (200 if events[-1].event == "done" else 502), events[-1].data


async def only_call(engine: AsyncEngine, execution_id: str) -> Any:
    async with engine.connect() as connection:
        query = select(LLMCall).where(LLMCall.execution_id == execution_id)
        (call,) = (await connection.execute(query)).all()
    return call


async def execution_and_last_message(
    base_url: str, user: Actor, details: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        execution = await http.get(
            f"/api/v1/executions/{details['execution_id']}", headers=user.headers
        )
        messages = await http.get(
            f"/api/v1/conversations/{details['conversation_id']}/messages", headers=user.headers
        )
    return execution.json(), messages.json()["items"][-1]


@pytest.mark.parametrize("endpoint", ["chat", "stream"])
@pytest.mark.parametrize("cleanly", [True, False], ids=["ended", "dropped"])
async def test_stream_without_a_finish_is_a_failed_turn(
    base_url: str,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
    endpoint: str,
    cleanly: bool,
) -> None:
    fake.enqueue(FakeReply(content=LONG_TEXT, break_after_chunks=6, break_cleanly=cleanly))
    status, body = await turn(base_url, alice, endpoint)
    assert status == 502, body
    if endpoint == "chat":
        error = body["error"]
        execution, assistant = await execution_and_last_message(base_url, alice, error["details"])
    else:
        error, execution, assistant = body, body["execution"], body["assistant_message"]
    assert error["code"] == "provider_error"
    assert execution["status"] == "failed"
    assert assistant["status"] == "error"
    assert assistant["content"]
    assert LONG_TEXT.startswith(assistant["content"])
    assert assistant["usage_source"] == "estimated"
    assert assistant["prompt_tokens"] > 0
    assert assistant["completion_tokens"] > 0
    call = await only_call(engine, execution["id"])
    assert call.status == "failed"
    assert call.finish_reason is None
    assert call.total_tokens == assistant["total_tokens"] == execution["total_tokens"]
    await assert_invariants(engine)


async def test_finished_stream_without_usage_is_complete_and_estimated(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(content="finished, but no usage chunk", usage=None))
    status, body = await turn(base_url, alice, "chat")
    assert status == 200, body
    assistant = body["assistant_message"]
    assert assistant["status"] == "complete"
    assert assistant["finish_reason"] == "stop"
    assert assistant["usage_source"] == "estimated"
    await assert_invariants(engine)


@pytest.mark.parametrize("endpoint", ["chat", "stream"])
async def test_json_answer_to_a_stream_request_is_recorded(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine, endpoint: str
) -> None:
    fake.enqueue(FakeReply(content="One JSON body.", usage=USAGE, ignore_stream=True))
    status, body = await turn(base_url, alice, endpoint)
    assert status == 200, body
    assistant = body["assistant_message"]
    assert assistant["content"] == "One JSON body."
    assert (assistant["prompt_tokens"], assistant["cached_tokens"]) == (1200, 1000)
    assert assistant["completion_tokens"] == 300
    assert assistant["usage_source"] == "provider"
    assert assistant["finish_reason"] == "stop"
    price = calc_price(
        PriceUsage(input_tokens=1200, cache_read_tokens=1000, output_tokens=300),
        "gpt-4o-mini",
        provider_id="openai",
    )
    assert Decimal(assistant["cost"]) == Decimal(price.total_price)
    assert fake.requests[-1]["stream"] is True
    await assert_invariants(engine)


async def test_json_tool_call_to_a_stream_request(
    base_url: str, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
            ignore_stream=True,
        ),
        FakeReply(content="6*7 is 42.", ignore_stream=True),
    )
    status, body = await turn(base_url, alice, "chat", message="6*7?", workflow="chat_with_tools")
    assert status == 200, body
    assert body["assistant_message"]["content"] == "6*7 is 42."
    assert body["tool_messages"][0]["content"] == "42"
    assert body["assistant_message"]["total_tokens"] == 60 + 18
    await assert_invariants(engine)

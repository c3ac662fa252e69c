"""The Anthropic-compatible endpoint, with the official `anthropic` package as the client,
against the local fake Anthropic and OpenAI servers: each call a recorded Chatter turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from accounting import assert_invariants
from compat_support import (
    Clients,
    Expected,
    assert_accounted,
    compat_settings,
    new_user,
    recorded,
    sdk_clients,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from conftest import Actor, live_server
from fakes.anthropic_server import AnthropicReply, FakeAnthropicServer
from fakes.openai_server import FakeOpenAIServer, FakeReply

CACHED_USAGE = {
    "input_tokens": 100,
    "cache_read_input_tokens": 50,
    "cache_creation_input_tokens": 20,
    "output_tokens": 30,
}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CLAUDE = "anthropic/claude-3-5-haiku-latest"


@pytest.fixture(scope="module")
def settings(
    database_url: str, fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer
) -> Settings:
    return compat_settings(database_url, fake_openai, fake_anthropic)


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture
async def user(http: httpx.AsyncClient) -> tuple[Actor, str]:
    return await new_user(http)


@pytest.fixture
def sdk(server: str, user: tuple[Actor, str]) -> Clients:
    return sdk_clients(server, user[1])


@pytest.fixture
def claude(fake_anthropic: FakeAnthropicServer) -> Iterator[FakeAnthropicServer]:
    fake_anthropic.reset()
    yield fake_anthropic
    fake_anthropic.reset()


async def drain(client: anthropic.AsyncAnthropic, **request: Any) -> None:
    async with client.messages.stream(**request) as stream:
        async for _ in stream:
            pass


def hello() -> list[Any]:
    return [{"role": "user", "content": "Hi"}]


async def test_plain_call_with_cache_counts(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    claude.enqueue(AnthropicReply(content="Hello from Claude.", usage=CACHED_USAGE))
    raw = await sdk.anthropic.messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        stop_sequences=["END"],
        extra_body={"temperature": 0.2, "top_p": 0.8},
    )
    message = await raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from Claude."
    assert message.stop_reason == "end_turn"
    usage = message.usage
    # Anthropic's convention: input_tokens excludes cache reads and writes.
    assert (usage.input_tokens, usage.output_tokens) == (100, 30)
    assert usage.cache_read_input_tokens == 50
    assert usage.cache_creation_input_tokens == 20
    upstream = claude.requests[-1]
    assert upstream["system"] == "Be brief."
    assert upstream["max_tokens"] == 100
    assert upstream["stop_sequences"] == ["END"]
    assert (upstream["temperature"], upstream["top_p"]) == (0.2, 0.8)
    stored = await assert_accounted(
        http,
        user[0],
        engine,
        raw.headers["x-chatter-conversation-id"],
        raw.headers["x-correlation-id"],
        Expected(170, 30, 50),  # Chatter's prompt_tokens includes them
    )
    assert message.id == f"msg_{stored.execution.id}"
    assert [m.role for m in stored.messages] == ["system", "user", "assistant"]
    await assert_invariants(engine)


async def test_stream_events_and_usage(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    claude.enqueue(AnthropicReply(content="One two three.", usage=CACHED_USAGE))
    async with sdk.anthropic.messages.stream(
        model="claude", max_tokens=100, messages=hello()
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_start" in kinds
    assert "message_delta" in kinds
    assert final.content[0].type == "text"
    assert final.content[0].text == "One two three."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (100, 30)
    assert final.usage.cache_read_input_tokens == 50
    assert final.usage.cache_creation_input_tokens == 20
    response = stream.response
    await assert_accounted(
        http,
        user[0],
        engine,
        response.headers["x-chatter-conversation-id"],
        response.headers["x-correlation-id"],
        Expected(170, 30, 50),
    )


async def test_tool_use_round_trip(
    sdk: Clients, claude: FakeAnthropicServer, engine: AsyncEngine
) -> None:
    call = {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Rome"}}
    claude.enqueue(
        AnthropicReply(content="", tool_calls=[call]), AnthropicReply(content="Sunny in Rome.")
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Rome?"}]
    raw = await sdk.anthropic.messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=200,
        messages=messages,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "auto"},
    )
    first = await raw.parse()
    assert first.stop_reason == "tool_use"
    (tool_use,) = [block for block in first.content if block.type == "tool_use"]
    assert (tool_use.id, tool_use.name, tool_use.input) == (
        "toolu_1",
        "get_weather",
        {"city": "Rome"},
    )
    assert claude.requests[-1]["tools"][0]["name"] == "get_weather"
    assert claude.requests[-1]["tool_choice"] == {"type": "auto"}
    conversation_id = raw.headers["x-chatter-conversation-id"]
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ]
    second = await sdk.anthropic.messages.create(
        model=CLAUDE,
        max_tokens=200,
        messages=messages,
        tools=[WEATHER],  # type: ignore[list-item]
        extra_headers={"X-Chatter-Conversation-Id": conversation_id},
    )
    assert second.content[0].type == "text"
    assert second.content[0].text == "Sunny in Rome."
    upstream = claude.requests[-1]["messages"]
    assert upstream[-1]["content"][0]["type"] == "tool_result"
    stored = await recorded(engine, conversation_id)
    assert [(m.role, m.content) for m in stored.messages] == [
        ("user", "Weather in Rome?"),
        ("assistant", ""),
        ("tool", "sunny"),
        ("assistant", "Sunny in Rome."),
    ]
    await assert_invariants(engine)


async def test_streamed_tool_use(sdk: Clients, claude: FakeAnthropicServer) -> None:
    call = {"id": "toolu_2", "name": "get_weather", "arguments": {"city": "Lima"}}
    claude.enqueue(AnthropicReply(content="Let me check.", tool_calls=[call]))
    async with sdk.anthropic.messages.stream(
        model=CLAUDE,
        max_tokens=100,
        messages=hello(),
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Lima"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert claude.requests[-1]["tool_choice"] == {"type": "tool", "name": "get_weather"}


async def test_openai_upstream_usage_in_anthropic_terms(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    fake.enqueue(FakeReply(content="Hi from GPT.", usage=usage))
    raw = await sdk.anthropic.messages.with_raw_response.create(
        model="fast", max_tokens=50, system="Be brief.", messages=hello()
    )
    message = await raw.parse()
    assert message.usage.input_tokens == 200
    assert message.usage.cache_read_input_tokens == 1000
    assert message.usage.output_tokens == 300
    assert message.stop_reason == "end_turn"
    assert [m["role"] for m in fake.requests[-1]["messages"]] == ["system", "user"]
    await assert_accounted(
        http,
        user[0],
        engine,
        raw.headers["x-chatter-conversation-id"],
        raw.headers["x-correlation-id"],
        Expected(1200, 300, 1000),
    )


async def test_errors_in_anthropic_shape(
    sdk: Clients,
    server: str,
    http: httpx.AsyncClient,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    bad = anthropic.AsyncAnthropic(base_url=server, api_key="chk_nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await bad.messages.create(model=CLAUDE, max_tokens=10, messages=hello())
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    # The Authorization header works too (the SDK's auth_token).
    bearer = anthropic.AsyncAnthropic(base_url=server, auth_token=sdk.key, max_retries=0)
    answer = await bearer.messages.create(model="demo/demo-1", max_tokens=10, messages=hello())
    assert answer.usage.output_tokens > 0
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await sdk.anthropic.messages.create(model="claude-9", max_tokens=10, messages=hello())
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    missing = await http.post(
        "/v1/messages",
        json={"model": CLAUDE, "messages": hello()},
        headers={"x-api-key": sdk.key},
    )
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert "max_tokens" in missing.json()["error"]["message"]
    claude.enqueue(AnthropicReply(status=529, error_message="overloaded upstream"))
    with pytest.raises(anthropic.APIStatusError) as failed:
        await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=10, messages=hello())
    assert failed.value.status_code == 502
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    other = sdk_clients(server, (await new_user(http))[1])
    mine = await sdk.anthropic.messages.with_raw_response.create(
        model="demo/demo-1", max_tokens=10, messages=hello()
    )
    with pytest.raises(anthropic.NotFoundError):
        await other.anthropic.messages.create(
            model="demo/demo-1",
            max_tokens=10,
            messages=hello(),
            extra_headers={"X-Chatter-Conversation-Id": mine.headers["x-chatter-conversation-id"]},
        )
    await assert_invariants(engine)


async def test_stream_that_breaks_ends_with_an_error_event(
    sdk: Clients, claude: FakeAnthropicServer, engine: AsyncEngine
) -> None:
    claude.enqueue(AnthropicReply(content="one two three four", break_after_chunks=2))
    with pytest.raises(anthropic.APIStatusError):
        await drain(sdk.anthropic, model=CLAUDE, max_tokens=10, messages=hello())
    await assert_invariants(engine)

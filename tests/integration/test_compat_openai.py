"""The OpenAI-compatible endpoint, with the official `openai` package as the client, against
the local fake OpenAI and Anthropic servers: each call a recorded Chatter turn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
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

USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 120},
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


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


async def test_plain_call_is_a_recorded_turn_with_the_exact_usage(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    fake.enqueue(FakeReply(content="Hello from the fake.", usage=USAGE))
    raw = await sdk.openai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ],
        temperature=0.5,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "openai/gpt-4o-mini"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1200, 300, 1500)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1000
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 120
    # The model input is exactly the client's list, with its options.
    upstream = fake.requests[-1]
    assert [m["role"] for m in upstream["messages"]] == ["system", "user"]
    assert upstream["temperature"] == 0.5
    assert upstream["top_p"] == 0.9
    assert upstream["stop"] == ["\n\n"]
    conversation_id = raw.headers["x-chatter-conversation-id"]
    stored = await assert_accounted(
        http,
        user[0],
        engine,
        conversation_id,
        raw.headers["x-correlation-id"],
        Expected(1200, 300, 1000, 120),
    )
    assert [m.role for m in stored.messages] == ["system", "user", "assistant"]
    assert completion.id == f"chatcmpl-{stored.execution.id}"
    await assert_invariants(engine)


async def test_stream_with_usage(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    fake.enqueue(FakeReply(content="One two three four.", usage=USAGE))
    raw = await sdk.openai.chat.completions.with_raw_response.create(
        model="fast",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in raw.parse()]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three four."
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (1200, 300)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 1000
    await assert_accounted(
        http,
        user[0],
        engine,
        raw.headers["x-chatter-conversation-id"],
        raw.headers["x-correlation-id"],
        Expected(1200, 300, 1000, 120),
    )
    await assert_invariants(engine)


async def test_tool_call_round_trip_continues_the_conversation(
    sdk: Clients, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    call = {"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris"}}
    fake.enqueue(
        FakeReply(content="", tool_calls=[call]), FakeReply(content="It is sunny in Paris.")
    )
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    raw = await sdk.openai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=messages, tools=[WEATHER], tool_choice="auto"
    )
    first = raw.parse()
    assert first.choices[0].finish_reason == "tool_calls"
    (tool_call,) = first.choices[0].message.tool_calls or []
    assert tool_call.id == "call_w1"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert fake.requests[-1]["tools"][0]["function"]["name"] == "get_weather"
    assert fake.requests[-1]["tool_choice"] == "auto"
    conversation_id = raw.headers["x-chatter-conversation-id"]
    # The client runs the tool and sends the result back, continuing the conversation.
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 24 C"},
    ]
    second = await sdk.openai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],
        extra_headers={"X-Chatter-Conversation-Id": conversation_id},
    )
    assert second.parse().choices[0].message.content == "It is sunny in Paris."
    assert second.headers["x-chatter-conversation-id"] == conversation_id
    upstream = fake.requests[-1]["messages"]
    assert [m["role"] for m in upstream] == ["user", "assistant", "tool"]
    stored = await recorded(engine, conversation_id)
    # Nothing stored twice: the second turn stored only what followed the assistant message.
    assert [(m.role, m.content) for m in stored.messages] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "sunny, 24 C"),
        ("assistant", "It is sunny in Paris."),
    ]
    assert stored.messages[1].tool_calls == [
        {"id": "call_w1", "name": "get_weather", "args": {"city": "Paris"}}
    ]
    assert stored.messages[2].tool_call_id == "call_w1"
    assert stored.conversation.prompt_tokens == 22  # two calls of the default usage
    await assert_invariants(engine)


async def test_streamed_tool_calls(sdk: Clients, fake: FakeOpenAIServer) -> None:
    call = {"id": "call_s1", "name": "get_weather", "arguments": {"city": "Oslo"}}
    fake.enqueue(FakeReply(content="", tool_calls=[call]))
    stream = await sdk.openai.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_s1"
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {"city": "Oslo"}
    assert {d.index for d in deltas} == {0}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    expected_choice = {"type": "function", "function": {"name": "get_weather"}}
    assert fake.requests[-1]["tool_choice"] == expected_choice


async def test_anthropic_upstream_usage_in_openai_terms(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 20,
        "output_tokens": 30,
    }
    claude.enqueue(AnthropicReply(content="Bonjour.", usage=usage))
    raw = await sdk.openai.chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        ],
        max_completion_tokens=64,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Bonjour."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 170  # cache reads and writes included
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 50
    upstream = claude.requests[-1]
    assert upstream["system"] == "Answer in French."
    assert upstream["max_tokens"] == 64
    await assert_accounted(
        http,
        user[0],
        engine,
        raw.headers["x-chatter-conversation-id"],
        raw.headers["x-correlation-id"],
        Expected(170, 30, 50),
    )


async def test_demo_model_tool_round_trip(sdk: Clients, engine: AsyncEngine) -> None:
    calculator = {
        "type": "function",
        "function": {
            "name": "calculator",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
    messages: list[dict[str, object]] = [{"role": "user", "content": "calculate 6*7"}]
    first = await sdk.openai.chat.completions.create(
        model="demo/demo-1", messages=messages, tools=[calculator]
    )
    (call,) = first.choices[0].message.tool_calls or []
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    second = await sdk.openai.chat.completions.create(
        model="demo/demo-1",
        messages=messages,  # type: ignore[arg-type]
        tools=[calculator],
    )
    assert "42" in (second.choices[0].message.content or "")
    await assert_invariants(engine)


async def test_models_lists_pairs_and_aliases(sdk: Clients, http: httpx.AsyncClient) -> None:
    anonymous = await http.get("/v1/models")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    models = [model.id async for model in sdk.openai.models.list()]
    assert "demo/demo-1" in models
    assert "openai/gpt-4o-mini" in models
    assert "anthropic/claude-3-5-haiku-latest" in models
    assert {"fast", "claude"} <= set(models)


async def test_errors_in_openai_shape(
    sdk: Clients, server: str, http: httpx.AsyncClient, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    hello = [{"role": "user", "content": "Hi"}]
    bad = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="chk_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        await bad.chat.completions.create(model="demo/demo-1", messages=hello)  # type: ignore[arg-type]
    assert refused.value.status_code == 401
    assert refused.value.body["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk.openai.chat.completions.create(model="nope/gpt-9", messages=hello)  # type: ignore[arg-type]
    assert unknown.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as several:
        await sdk.openai.chat.completions.create(model="demo/demo-1", messages=hello, n=2)  # type: ignore[arg-type]
    assert "'n'" in several.value.message
    with pytest.raises(openai.BadRequestError):
        await sdk.openai.chat.completions.create(model="demo/demo-1", messages=[])
    fake.enqueue(FakeReply(status=500, error_message="upstream exploded"))
    with pytest.raises(openai.APIStatusError) as failed:
        await sdk.openai.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini",
            messages=hello,  # type: ignore[arg-type]
        )
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "provider_error"  # type: ignore[index]
    stored = await recorded(engine, failed.value.response.headers["x-chatter-conversation-id"])
    assert stored.execution.status == "failed"
    # Someone else's conversation is a 404.
    other = sdk_clients(server, (await new_user(http))[1])
    mine = await sdk.openai.chat.completions.with_raw_response.create(
        model="demo/demo-1",
        messages=hello,  # type: ignore[arg-type]
    )
    with pytest.raises(openai.NotFoundError):
        await other.openai.chat.completions.create(
            model="demo/demo-1",
            messages=hello,  # type: ignore[arg-type]
            extra_headers={"X-Chatter-Conversation-Id": mine.headers["x-chatter-conversation-id"]},
        )
    await assert_invariants(engine)


async def test_stream_that_breaks_ends_with_an_error(
    sdk: Clients, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(content="one two three four", break_after_chunks=2))
    stream = await sdk.openai.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as broken:
        async for _ in stream:
            pass
    assert broken.value.body["code"] == "provider_error"  # type: ignore[index]
    await assert_invariants(engine)


async def test_langchain_chat_openai_as_client(server: str, sdk: Clients) -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(base_url=f"{server}/v1", api_key=sdk.key, model="demo/demo-1")  # type: ignore[arg-type]
    answer = await model.ainvoke("Hello there")
    assert answer.text
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] > 0


async def test_client_leaving_mid_stream_cancels_the_turn(
    http: httpx.AsyncClient, user: tuple[Actor, str], fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(content="one two three four five six seven", chunk_delay_s=0.2))
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Count slowly"}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {user[1]}"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        conversation_id = response.headers["x-chatter-conversation-id"]
        async for line in response.aiter_lines():
            if "one" in line:
                break  # leave after the first words
    for _ in range(100):
        stored = await recorded(engine, conversation_id)
        if stored.execution.status != "running":
            break
        await asyncio.sleep(0.05)
    assert stored.execution.status == "cancelled"
    assert stored.messages[-1].status == "partial"
    assert stored.calls[0].completion_tokens > 0  # what was generated is on record
    await assert_invariants(engine)


async def test_tool_round_trip_with_an_anthropic_model(
    sdk: Clients,
    http: httpx.AsyncClient,
    user: tuple[Actor, str],
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    call = {"id": "toolu_x1", "name": "get_weather", "arguments": {"city": "Kyiv"}}
    claude.enqueue(
        AnthropicReply(content="", tool_calls=[call]), AnthropicReply(content="Snow in Kyiv.")
    )
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Kyiv?"}]
    raw = await sdk.openai.chat.completions.with_raw_response.create(
        model="claude", messages=messages, tools=[WEATHER], tool_choice="required"
    )
    first = raw.parse()
    assert first.choices[0].finish_reason == "tool_calls"
    assert claude.requests[-1]["tools"][0]["input_schema"]["properties"] == {
        "city": {"type": "string"}
    }
    assert claude.requests[-1]["tool_choice"] == {"type": "any"}
    conversation_id = raw.headers["x-chatter-conversation-id"]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_x1", "content": "snow, -3 C"},
    ]
    second = await sdk.openai.chat.completions.create(
        model="claude",
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],
        extra_headers={"X-Chatter-Conversation-Id": conversation_id},
    )
    assert second.choices[0].message.content == "Snow in Kyiv."
    upstream = claude.requests[-1]["messages"]
    assert upstream[1]["content"][0]["type"] == "tool_use"
    result = upstream[2]["content"][0]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_x1")
    assert result["content"] == "snow, -3 C"
    # The stored conversation reads back through the native API.
    listed = await http.get(
        f"/api/v1/conversations/{conversation_id}/messages", headers=user[0].headers
    )
    assert [m["role"] for m in listed.json()["items"]] == ["user", "assistant", "tool", "assistant"]
    await assert_invariants(engine)

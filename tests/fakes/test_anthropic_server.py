"""Self-tests of the fake Anthropic server through the real anthropic SDK and
langchain-anthropic (the plain ChatAnthropic: what the wire carries, not Chatter's fixes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import reduce
from typing import Any

import anthropic
import httpx
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk, BaseMessageChunk

from .anthropic_server import AnthropicReply, FakeAnthropicServer

CACHED_USAGE: dict[str, Any] = {
    "input_tokens": 100,
    "cache_read_input_tokens": 300,
    "cache_creation_input_tokens": 50,
    "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 10},
    "output_tokens": 25,
}
TOOL_CALL: dict[str, Any] = {"name": "lookup", "arguments": {"q": "weather"}, "id": "toolu_1"}
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def server(fake_server: FakeAnthropicServer) -> FakeAnthropicServer:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def client(server: FakeAnthropicServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="test", max_retries=0)
    yield sdk
    await sdk.close()


def chat_model(server: FakeAnthropicServer, **kwargs: Any) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        base_url=server.base_url,
        api_key="test",
        model_name="claude-3-5-haiku-latest",
        max_retries=0,
        **kwargs,
    )


async def collect(model: Any, prompt: str = "hi") -> BaseMessageChunk:
    chunks = [chunk async for chunk in model.astream(prompt)]
    return reduce(lambda a, b: a + b, chunks)


async def raw_events(client: anthropic.AsyncAnthropic) -> list[Any]:
    stream = await client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=100, messages=MESSAGES, stream=True
    )
    return [event async for event in stream]


async def test_json_message(server: FakeAnthropicServer, client: anthropic.AsyncAnthropic) -> None:
    server.enqueue(AnthropicReply(content="Hi there.", usage=CACHED_USAGE))
    message = await client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=100, messages=MESSAGES
    )
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hi there."  # type: ignore[union-attr]
    assert message.model == "claude-3-5-haiku-latest"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 100
    assert message.usage.cache_read_input_tokens == 300
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 10
    request = server.requests[0]
    assert request["_headers"]["authorization"] == "Bearer test"  # anthropic>=2 sends this
    assert request["messages"] == MESSAGES


async def test_stream_events_in_order(
    server: FakeAnthropicServer, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(AnthropicReply(content="a b c", tool_calls=[TOOL_CALL]))
    events = await raw_events(client)
    assert [event.type for event in events] == [
        "message_start",
        *["content_block_start"] + ["content_block_delta"] * 3 + ["content_block_stop"],
        *["content_block_start"] + ["content_block_delta"] * 2 + ["content_block_stop"],
        "message_delta",
        "message_stop",
    ]  # the SDK drops `ping`
    assert "".join(e.delta.text for e in events[2:5]) == "a b c"
    tool_start = events[6]
    assert tool_start.content_block.type == "tool_use"
    assert tool_start.content_block.input == {}
    assert "".join(e.delta.partial_json for e in events[7:9]) == '{"q": "weather"}'
    assert events[-2].delta.stop_reason == "tool_use"
    assert len(server.stream_finished_at) == 1


async def test_ping_is_on_the_wire(server: FakeAnthropicServer) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        text = (await http.post("/v1/messages", json=body)).text
    assert "event: ping" in text
    assert text.index("event: message_start") < text.index("event: ping")


async def test_usage_shapes(server: FakeAnthropicServer, client: anthropic.AsyncAnthropic) -> None:
    server.enqueue(
        AnthropicReply(usage=CACHED_USAGE),
        AnthropicReply(usage=CACHED_USAGE, usage_shape="cumulative"),
    )
    documented, cumulative = await raw_events(client), await raw_events(client)
    for events in (documented, cumulative):
        start = events[0].message.usage
        assert (start.input_tokens, start.cache_read_input_tokens) == (100, 300)
        assert start.cache_creation_input_tokens == 50
        assert events[-2].usage.output_tokens == 25
    assert documented[-2].usage.input_tokens is None
    assert documented[-2].usage.cache_read_input_tokens is None
    assert cumulative[-2].usage.input_tokens == 100
    assert cumulative[-2].usage.cache_read_input_tokens == 300


async def test_plain_langchain_reads_message_delta_only(server: FakeAnthropicServer) -> None:
    """The gap Chatter's AnthropicChatModel closes: the documented shape loses the input."""
    server.enqueue(
        AnthropicReply(usage=CACHED_USAGE),
        AnthropicReply(usage=CACHED_USAGE, usage_shape="cumulative"),
    )
    documented, cumulative = await collect(chat_model(server)), await collect(chat_model(server))
    assert isinstance(documented, AIMessageChunk)
    assert isinstance(cumulative, AIMessageChunk)
    assert documented.usage_metadata is not None
    assert documented.usage_metadata["input_tokens"] == 0
    assert cumulative.usage_metadata is not None
    assert cumulative.usage_metadata["input_tokens"] == 450  # 100 + 300 read + 50 written
    assert cumulative.usage_metadata["output_tokens"] == 25


async def test_error_statuses(
    server: FakeAnthropicServer, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(
        AnthropicReply(status=529, error_message="Overloaded"),
        AnthropicReply(status=500, error_message="boom"),
    )
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await raw_events(client)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"] == {  # type: ignore[index]
        "type": "overloaded_error",
        "message": "Overloaded",
    }
    with pytest.raises(anthropic.InternalServerError, match="boom"):
        await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)


async def test_stream_cut_midway(
    server: FakeAnthropicServer, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(
        AnthropicReply(content="a b c d e", break_after_chunks=2),
        AnthropicReply(content="a b c d e", break_after_chunks=2, break_cleanly=True),
    )
    # A dropped connection: the SDK lets the transport's error through mid-stream.
    with pytest.raises(Exception, match="incomplete chunked read"):
        await raw_events(client)
    # A cleanly ended body is no error to the SDK: the stream just stops, unfinished.
    events = await raw_events(client)
    assert [event.type for event in events][-1] == "content_block_delta"
    assert not any(event.type == "message_delta" for event in events)
    assert server.stream_finished_at == []


async def test_json_answer_to_a_stream_request(
    server: FakeAnthropicServer, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(AnthropicReply(content="plain JSON", ignore_stream=True))
    events = await raw_events(client)
    assert events == []  # the SDK finds no events in a JSON body
    assert server.requests[0]["stream"] is True

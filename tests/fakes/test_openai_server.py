"""Self-tests of the fake OpenAI server through the real openai SDK and langchain-openai."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from functools import reduce
from typing import Any

import httpx
import openai
import pytest
from langchain_core.exceptions import ModelConnectionError
from langchain_core.messages import AIMessageChunk, BaseMessageChunk
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import OpenAIConnectionError

from .openai_server import FakeOpenAIServer, FakeReply, split_content

EXPECTED_USAGE: dict[str, Any] = {
    "input_tokens": 11,
    "output_tokens": 7,
    "total_tokens": 18,
    "input_token_details": {"cache_read": 4},
    "output_token_details": {"reasoning": 2},
}
TOOL_CALL: dict[str, Any] = {"name": "lookup", "arguments": {"q": "weather"}, "id": "call_1"}


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def server(fake_server: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def client(server: FakeOpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    yield sdk
    await sdk.close()


def chat_model(server: FakeOpenAIServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url,
        api_key="test",
        model="gpt-4o-mini",
        stream_usage=True,
        max_retries=0,
        **kwargs,
    )


async def collect(model: ChatOpenAI, prompt: str = "hi") -> tuple[BaseMessageChunk, int]:
    chunks = [chunk async for chunk in model.astream(prompt)]
    return reduce(lambda a, b: a + b, chunks), len(chunks)


async def read_sdk_stream(client: openai.AsyncOpenAI, received: list[str]) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    async for chunk in stream:
        received.append(chunk.choices[0].delta.content or "")


async def read_langchain_stream(model: ChatOpenAI, received: list[str]) -> None:
    async for chunk in model.astream("hi"):
        received.append(str(chunk.content))


def test_split_content_keeps_whitespace() -> None:
    text = "  Hello big\n world  "
    assert "".join(split_content(text)) == text
    assert split_content("a b c", 2) == ["a b ", "c"]
    assert split_content("") == []


def test_sync_usage_and_scripting(server: FakeOpenAIServer) -> None:
    server.enqueue(FakeReply(content="first"), FakeReply(content="second"))
    server.set_responder(lambda req: FakeReply(content=f"echo {req['messages'][-1]['content']}"))
    with httpx.Client(base_url=server.base_url) as http:
        assert [m["id"] for m in http.get("/models").json()["data"]] == ["gpt-4o-mini", "gpt-4o"]
        answers = [
            http.post(
                "/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": str(i)}]},
                headers={"x-test": "yes"},
            ).json()["choices"][0]["message"]["content"]
            for i in range(3)
        ]
        server.set_responder(None)
        server.default_reply = FakeReply(content="default")
        body = {"model": "m", "messages": []}
        answers.append(http.post("/chat/completions", json=body).json()["choices"][0]["message"])
    assert answers[:3] == ["first", "second", "echo 2"]
    assert answers[3]["content"] == "default"
    assert len(server.requests) == 4
    assert server.requests[0]["_headers"]["x-test"] == "yes"
    assert server.queued == 0


async def test_non_streamed_usage(server: FakeOpenAIServer) -> None:
    message = await chat_model(server).ainvoke("hi")
    assert message.content == "Hello from the fake model."
    assert message.usage_metadata == EXPECTED_USAGE
    assert server.requests[0]["model"] == "gpt-4o-mini"
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hi"}]


async def test_streamed_usage_matches(server: FakeOpenAIServer) -> None:
    content = "one two three four five"
    server.default_reply = FakeReply(content=content, chunk_size_words=2)
    merged, count = await collect(chat_model(server))
    assert merged.content == content
    assert isinstance(merged, AIMessageChunk)
    assert merged.usage_metadata == EXPECTED_USAGE
    assert count >= 3
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    assert len(server.stream_finished_at) == 1


async def test_omitted_usage(server: FakeOpenAIServer) -> None:
    server.default_reply = FakeReply(usage=None)
    message = await chat_model(server).ainvoke("hi")
    assert message.usage_metadata is None
    merged, _ = await collect(chat_model(server))
    assert merged.content == "Hello from the fake model."
    assert isinstance(merged, AIMessageChunk)
    assert merged.usage_metadata is None


async def test_error_status(server: FakeOpenAIServer, client: openai.AsyncOpenAI) -> None:
    server.enqueue(
        FakeReply(status=429, error_message="slow down"),
        FakeReply(status=500, error_message="boom"),
    )
    with pytest.raises(openai.RateLimitError, match="slow down") as rate_limited:
        await chat_model(server).ainvoke("hi")
    assert rate_limited.value.status_code == 429
    with pytest.raises(openai.InternalServerError, match="boom"):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
        )


async def test_tool_calls_both_modes(server: FakeOpenAIServer) -> None:
    server.default_reply = FakeReply(content="", tool_calls=[TOOL_CALL])
    message = await chat_model(server).ainvoke("hi")
    merged, _ = await collect(chat_model(server))
    assert isinstance(merged, AIMessageChunk)
    for msg in (message, merged):
        assert msg.tool_calls == [
            {"name": "lookup", "args": {"q": "weather"}, "id": "call_1", "type": "tool_call"}
        ]
        assert msg.response_metadata["finish_reason"] == "tool_calls"
        assert msg.usage_metadata == EXPECTED_USAGE


async def test_broken_stream_sdk(server: FakeOpenAIServer, client: openai.AsyncOpenAI) -> None:
    server.default_reply = FakeReply(content="a b c d e f", break_after_chunks=2)
    received: list[str] = []
    # openai>=3 is built on httpx2 and wraps mid-stream transport errors.
    with pytest.raises(openai.APIConnectionError) as broken:
        await read_sdk_stream(client, received)
    assert "".join(received) == "a b "
    assert type(broken.value.__cause__).__name__ == "RemoteProtocolError"
    assert "incomplete chunked read" in str(broken.value.__cause__)
    assert server.stream_finished_at == []


async def test_broken_stream_langchain(server: FakeOpenAIServer) -> None:
    server.default_reply = FakeReply(content="a b c d e f", break_after_chunks=3)
    received: list[str] = []
    with pytest.raises(OpenAIConnectionError) as broken:
        await read_langchain_stream(chat_model(server), received)
    assert "".join(received) == "a b c "
    assert isinstance(broken.value, openai.APIConnectionError)
    assert isinstance(broken.value, ModelConnectionError)


async def test_cleanly_ended_broken_stream(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.default_reply = FakeReply(content="a b c d", break_after_chunks=2, break_cleanly=True)
    received: list[str] = []
    await read_sdk_stream(client, received)  # no error: the stream just stops, unfinished
    assert "".join(received) == "a b "
    assert server.stream_finished_at == []


async def test_json_answer_to_a_stream_request(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.default_reply = FakeReply(content="plain JSON", ignore_stream=True)
    received: list[str] = []
    await read_sdk_stream(client, received)
    assert received == []  # the SDK finds no events in a JSON body
    with pytest.raises(ValueError, match="No generation chunks"):
        await collect(chat_model(server))


async def test_first_delta_before_last_chunk(server: FakeOpenAIServer) -> None:
    server.default_reply = FakeReply(content="w " * 6, chunk_delay_s=0.05)
    first_seen: float | None = None
    async for chunk in chat_model(server).astream("hi"):
        if chunk.content and first_seen is None:
            first_seen = time.monotonic()
    assert first_seen is not None
    assert first_seen < server.stream_finished_at[0]


async def test_client_disconnect_counted(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.default_reply = FakeReply(content="w " * 50, chunk_delay_s=0.05)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    await server.wait_for_disconnects(1)
    assert server.disconnects == 1
    assert server.stream_finished_at == []


async def test_delay_timeout_counts_disconnect(server: FakeOpenAIServer) -> None:
    server.default_reply = FakeReply(delay_s=2)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await chat_model(server, timeout=0.2).ainvoke("hi")
    assert time.monotonic() - started < 1.5
    await server.wait_for_disconnects(1)


async def test_concurrent_requests_with_responder(server: FakeOpenAIServer) -> None:
    def respond(request: dict[str, Any]) -> FakeReply:
        return FakeReply(content=f"re: {request['messages'][-1]['content']}", delay_s=0.1)

    server.set_responder(respond)
    model = chat_model(server)
    started = time.monotonic()
    replies = await asyncio.gather(*(model.ainvoke(f"q{i}") for i in range(5)))
    assert [r.content for r in replies] == [f"re: q{i}" for i in range(5)]
    assert time.monotonic() - started < 0.45

"""Chatter's ChatAnthropic / ChatOpenAI subclasses, without a server: usage merging across
Anthropic's stream events, and JSON answers replayed as the stream they stand for."""

from __future__ import annotations

from functools import reduce
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI

from chatter.providers.anthropic_model import (
    AnthropicChatModel,
    StreamUsage,
    merge_usage,
    message_events,
)
from chatter.providers.openai_model import OpenAIChatModel, completion_chunks
from chatter.providers.usage_extraction import reported_token_counts

START = {
    "input_tokens": 100,
    "cache_read_input_tokens": 300,
    "cache_creation_input_tokens": 50,
    "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 10},
    "output_tokens": 1,
}
FULL = {**START, "output_tokens": 25}
MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-haiku-latest",
    "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "6*7"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": FULL,
}


def anthropic_model() -> AnthropicChatModel:
    return AnthropicChatModel(  # type: ignore[call-arg]
        model_name="claude-3-5-haiku-latest", api_key="test", base_url="http://127.0.0.1:9"
    )


@pytest.mark.parametrize(
    "delta",
    [
        {"output_tokens": 25},  # Anthropic's documented shape: input only in message_start
        FULL,  # the cumulative shape: message_delta repeats every count
        {**FULL, "input_tokens": None, "cache_read_input_tokens": None},  # nulls, not absent
        {**FULL, "input_tokens": 0},  # a proxy that zeroes what it does not know
    ],
    ids=["documented", "cumulative", "nulls", "zeros"],
)
def test_merge_usage_gives_the_same_counts_for_every_shape(delta: dict[str, Any]) -> None:
    merged = merge_usage(START, delta)

    assert merged["input_tokens"] == 100
    assert merged["cache_read_input_tokens"] == 300
    assert merged["cache_creation_input_tokens"] == 50
    assert merged["cache_creation"] == {
        "ephemeral_5m_input_tokens": 40,
        "ephemeral_1h_input_tokens": 10,
    }
    assert merged["output_tokens"] == 25


def test_merge_usage_without_a_start() -> None:
    assert merge_usage({}, {"output_tokens": 7}) == {
        "output_tokens": 7,
        "input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def stream_through(model: AnthropicChatModel, events: list[Any]) -> AIMessageChunk:
    """Run events through the model's own event conversion and the per-stream usage."""
    usage, block, chunks = StreamUsage(), None, []
    for event in events:
        message, block = model._make_message_chunk_from_anthropic_event(
            event, stream_usage=True, coerce_content_to_string=False, block_start_event=block
        )
        if message is not None:
            chunks.append(usage.complete(ChatGenerationChunk(message=message)).message)
    merged = reduce(lambda a, b: a + b, chunks)
    assert isinstance(merged, AIMessageChunk)
    return merged


def test_json_message_replays_as_its_stream() -> None:
    events = message_events(MESSAGE)

    assert [e.type for e in events] == [
        "message_start",
        *("content_block_start", "content_block_delta", "content_block_stop") * 2,
        "message_delta",
        "message_stop",
    ]
    merged = stream_through(anthropic_model(), events)
    assert merged.tool_calls[0]["args"] == {"expression": "6*7"}
    assert merged.response_metadata["stop_reason"] == "tool_use"
    assert not any(key.startswith("_chatter") for key in merged.response_metadata)
    counts = reported_token_counts(merged)
    assert counts is not None
    # 100 fresh + 300 read + 50 written, each counted once.
    assert (counts.prompt_tokens, counts.cached_tokens, counts.cache_write_tokens) == (450, 300, 50)
    assert counts.completion_tokens == 25


def test_documented_stream_shape_keeps_the_input_side() -> None:
    events = message_events(MESSAGE)
    events[-2].usage = events[-2].usage.model_copy(
        update=dict.fromkeys(
            ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )
    )
    documented = events

    counts = reported_token_counts(stream_through(anthropic_model(), documented))

    assert counts is not None
    assert (counts.prompt_tokens, counts.cached_tokens, counts.completion_tokens) == (450, 300, 25)


def test_sloppy_json_message_still_replays() -> None:
    events = message_events({"content": [{"type": "text", "text": "hi"}], "usage": {}})

    merged = stream_through(anthropic_model(), events)

    assert merged.text == "hi"
    assert reported_token_counts(merged) is None  # nothing reported: estimated downstream


def test_openai_completion_replays_as_chunks() -> None:
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "calculator", "arguments": '{"expression":"1"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }

    chunks = completion_chunks(completion)

    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 2
    (choice,) = chunks[0]["choices"]
    assert choice["delta"]["tool_calls"][0]["index"] == 0
    assert choice["finish_reason"] == "tool_calls"
    assert chunks[1] == {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": completion["usage"],
    }


def test_openai_model_is_still_a_chat_openai() -> None:
    model = OpenAIChatModel(model="gpt-4o-mini", api_key="x", base_url="http://127.0.0.1:9/v1")
    assert isinstance(model, ChatOpenAI)
    assert type(model.async_client).__name__ == "_AsyncCompletions"
    assert type(model.client).__name__ == "_Completions"

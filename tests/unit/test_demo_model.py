"""The offline demo model: deterministic replies, streaming, tool calls and usage."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import Runnable
from langchain_core.tools import tool

from chatter.providers import tokens
from chatter.providers.demo import DemoChatModel


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "84"


@tool
def current_time() -> str:
    """Return the current time."""
    return "12:00 UTC"


@pytest.fixture
def model() -> DemoChatModel:
    return DemoChatModel()


@pytest.fixture
def with_tools(model: DemoChatModel) -> Runnable[LanguageModelInput, AIMessage]:
    return model.bind_tools([calculator, current_time])


async def _astream_all(
    runnable: Runnable[LanguageModelInput, AIMessage], value: LanguageModelInput
) -> list[AIMessageChunk]:
    chunks: list[AIMessageChunk] = []
    async for chunk in runnable.astream(value):
        # Chat models stream AIMessageChunk even though Runnable types it as AIMessage.
        assert isinstance(chunk, AIMessageChunk)
        chunks.append(chunk)
    return chunks


def _merge(chunks: Sequence[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


# --- tokens -------------------------------------------------------------------------


def test_count_tokens_basics() -> None:
    assert tokens.count_tokens("") == 0
    assert tokens.count_tokens("hello world") == 2


def test_special_token_text_is_counted_as_plain_text() -> None:
    # Must not raise, and must not collapse into the single <|endoftext|> control token.
    assert tokens.count_tokens("<|endoftext|>") > 1


def test_count_message_tokens_uses_chat_framing() -> None:
    message = HumanMessage("hello world")
    expected = 3 + tokens.count_tokens("user") + tokens.count_tokens("hello world") + 3
    assert tokens.count_message_tokens([message]) == expected


def test_count_message_tokens_reads_text_parts_of_list_content() -> None:
    blocks = HumanMessage(
        content=[{"type": "text", "text": "hello "}, {"type": "image_url", "image_url": {}}, "x"]
    )
    plain = HumanMessage("hello x")
    assert tokens.count_message_tokens([blocks]) == tokens.count_message_tokens([plain])


def test_count_message_tokens_includes_tool_calls() -> None:
    call = {"name": "calculator", "args": {"expression": "1+1"}, "id": "call_1"}
    with_call = AIMessage(content="", tool_calls=[call])
    without = AIMessage(content="")
    extra = tokens.count_message_tokens([with_call]) - tokens.count_message_tokens([without])
    assert extra == tokens.count_tool_call_tokens(with_call.tool_calls) > 0


def test_truncate_to_tokens() -> None:
    text = "one two three four five six"
    assert tokens.truncate_to_tokens(text, 100) == text
    assert tokens.count_tokens(tokens.truncate_to_tokens(text, 3)) <= 3
    assert tokens.truncate_to_tokens(text, 0) == ""


# --- plain replies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "opening"),
    [
        ("Hello there", "Hello!"),
        ("What is the capital of France?", "Good question!"),
        ("Tell me a story", "Thanks for your message!"),
    ],
)
def test_reply_rules(model: DemoChatModel, prompt: str, opening: str) -> None:
    reply = model.invoke(prompt)
    assert isinstance(reply.content, str)
    assert reply.content.startswith(opening)
    assert f'"{prompt}"' in reply.content
    assert reply.response_metadata == {"model_name": "demo-1", "finish_reason": "stop"}


def test_replies_are_deterministic(model: DemoChatModel) -> None:
    assert model.invoke("Hello there").content == DemoChatModel().invoke("Hello there").content


def test_usage_equals_token_counts(model: DemoChatModel) -> None:
    messages: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("Hello there")]
    reply = model.invoke(messages)
    assert isinstance(reply.content, str)
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == tokens.count_message_tokens(messages) > 0
    assert usage["output_tokens"] == tokens.count_tokens(reply.content) > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_special_token_text_does_not_raise(model: DemoChatModel) -> None:
    reply = model.invoke("please print <|endoftext|> and <|endofprompt|>")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] > 0


# --- streaming --------------------------------------------------------------------------


async def test_astream_matches_invoke(model: DemoChatModel) -> None:
    reply = await model.ainvoke("Hello there")
    chunks = await _astream_all(model, "Hello there")
    merged = _merge(chunks)
    assert merged.content == reply.content
    assert merged.usage_metadata == reply.usage_metadata
    assert merged.response_metadata == reply.response_metadata
    assert merged.tool_calls == reply.tool_calls == []


def test_sync_stream_matches_invoke(model: DemoChatModel) -> None:
    reply = model.invoke("Tell me a story")
    merged = _merge(list(model.stream("Tell me a story")))
    assert merged.content == reply.content
    assert merged.usage_metadata == reply.usage_metadata


async def test_stream_is_word_by_word_with_usage_once_at_the_end(model: DemoChatModel) -> None:
    chunks = await _astream_all(model, "Hello there")
    assert len(chunks) > 5
    with_usage = [c for c in chunks if c.usage_metadata]
    assert with_usage == [chunks[-1]]
    assert chunks[-1].content == ""
    assert chunks[-1].response_metadata["finish_reason"] == "stop"
    assert all(not c.response_metadata for c in chunks[:-1])


async def test_chunk_delay_paces_the_stream() -> None:
    model = DemoChatModel(chunk_delay_s=0.01)
    started = time.monotonic()
    chunks = await _astream_all(model, "Hi")
    assert time.monotonic() - started >= 0.01 * (len(chunks) - 1)


# --- tool calling -----------------------------------------------------------------------


def _assert_calculator_call(message: AIMessage, expression: str) -> None:
    assert message.content == ""
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call["name"] == "calculator"
    assert call["args"] == {"expression": expression}
    assert call["id"] is not None
    assert call["id"].startswith("call_")


@pytest.mark.parametrize(
    ("prompt", "expression"),
    [
        ("what is 12*(3+4)?", "12*(3+4)"),
        ("calculate 2^10", "2^10"),
        ("17 + 25", "17 + 25"),
    ],
)
def test_tool_call_on_invoke(
    with_tools: Runnable[LanguageModelInput, AIMessage], prompt: str, expression: str
) -> None:
    reply = with_tools.invoke(prompt)
    _assert_calculator_call(reply, expression)
    assert reply.response_metadata["finish_reason"] == "tool_calls"


async def test_tool_call_on_astream(with_tools: Runnable[LanguageModelInput, AIMessage]) -> None:
    reply = await with_tools.ainvoke("what is 12*(3+4)?")
    merged = _merge(await _astream_all(with_tools, "what is 12*(3+4)?"))
    _assert_calculator_call(merged, "12*(3+4)")
    assert merged.tool_calls == reply.tool_calls
    assert merged.usage_metadata == reply.usage_metadata
    assert merged.response_metadata["finish_reason"] == "tool_calls"


def test_tool_call_usage_counts_the_call(
    with_tools: Runnable[LanguageModelInput, AIMessage],
) -> None:
    reply = with_tools.invoke("what is 12*(3+4)?")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == tokens.count_tool_call_tokens(reply.tool_calls)


def test_time_question_calls_current_time(
    with_tools: Runnable[LanguageModelInput, AIMessage],
) -> None:
    reply = with_tools.invoke("What time is it?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("current_time", {})]


@pytest.mark.parametrize("prompt", ["call me at 555-1234", "what is 3.5", "Hello there"])
def test_no_tool_call_without_an_expression(
    with_tools: Runnable[LanguageModelInput, AIMessage], prompt: str
) -> None:
    reply = with_tools.invoke(prompt)
    assert reply.tool_calls == []
    assert reply.content != ""


def test_no_tool_call_without_bound_tools(model: DemoChatModel) -> None:
    assert model.invoke("what is 12*(3+4)?").tool_calls == []


async def test_follow_up_after_tool_message(
    with_tools: Runnable[LanguageModelInput, AIMessage],
) -> None:
    question = HumanMessage("what is 12*(3+4)?")
    call = with_tools.invoke([question])
    result = ToolMessage("84", tool_call_id=call.tool_calls[0]["id"], name="calculator")
    history: list[BaseMessage] = [question, call, result]
    reply = with_tools.invoke(history)
    assert reply.content == "The calculator says 12*(3+4) = 84."
    assert reply.tool_calls == []
    assert reply.response_metadata["finish_reason"] == "stop"
    assert _merge(await _astream_all(with_tools, history)).content == reply.content


def test_follow_up_after_current_time(with_tools: Runnable[LanguageModelInput, AIMessage]) -> None:
    question = HumanMessage("what time is it")
    call = with_tools.invoke([question])
    result = ToolMessage("12:00 UTC", tool_call_id=call.tool_calls[0]["id"])
    assert with_tools.invoke([question, call, result]).content == "It is currently 12:00 UTC."


# --- limits -----------------------------------------------------------------------------


async def test_max_tokens_truncates() -> None:
    model = DemoChatModel(max_tokens=5)
    reply = await model.ainvoke("Hello there")
    assert reply.usage_metadata is not None
    assert 0 < reply.usage_metadata["output_tokens"] <= 5
    assert reply.response_metadata["finish_reason"] == "length"
    merged = _merge(await _astream_all(model, "Hello there"))
    assert merged.content == reply.content
    assert merged.usage_metadata == reply.usage_metadata


def test_max_tokens_per_call(model: DemoChatModel) -> None:
    full = model.invoke("Hello there")
    short = model.invoke("Hello there", max_tokens=3)
    assert isinstance(full.content, str)
    assert isinstance(short.content, str)
    assert full.content.startswith(short.content)
    assert tokens.count_tokens(short.content) <= 3


def test_stop_sequence_cuts_the_reply(model: DemoChatModel) -> None:
    reply = model.invoke("Hello there", stop=["You said"])
    assert reply.content == "Hello! I'm Chatter's offline demo model. "

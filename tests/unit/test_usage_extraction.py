"""Reading a model call's usage off its message: one convention for every provider shape.

prompt = every input token (cache reads and writes included), cached ⊆ prompt,
reasoning ⊆ completion, total = prompt + completion; a cached token is never counted twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata

from chatter.domain.usage import TokenCounts
from chatter.providers.usage_extraction import (
    CallTokens,
    call_token_counts,
    estimated_token_counts,
    reported_token_counts,
)


def _with_usage(usage: UsageMetadata, **fields: Any) -> AIMessage:
    return AIMessage(content="answer", usage_metadata=usage, **fields)


def _with_metadata(metadata: dict[str, Any]) -> AIMessage:
    return AIMessage(content="answer", response_metadata=metadata)


def _assert_consistent(counts: TokenCounts) -> None:
    assert counts.total_tokens == counts.prompt_tokens + counts.completion_tokens
    assert 0 <= counts.cached_tokens + counts.cache_write_tokens <= counts.prompt_tokens
    assert 0 <= counts.reasoning_tokens <= counts.completion_tokens


# --- LangChain usage_metadata -----------------------------------------------------------


def test_usage_metadata_openai_shape() -> None:
    message = _with_usage(
        UsageMetadata(
            input_tokens=100,
            output_tokens=50,
            total_tokens=150,
            input_token_details={"cache_read": 40, "audio": 0},
            output_token_details={"reasoning": 20, "audio": 0},
        )
    )

    counts = reported_token_counts(message)

    assert counts == TokenCounts(
        prompt_tokens=100, completion_tokens=50, cached_tokens=40, reasoning_tokens=20
    )
    assert counts.total_tokens == 150
    _assert_consistent(counts)


def test_usage_metadata_anthropic_shape_is_not_double_counted() -> None:
    # langchain-anthropic already folds cache reads and writes into input_tokens:
    # 10 fresh + 30 read from cache + 5 written to cache = 45.
    message = _with_usage(
        UsageMetadata(
            input_tokens=45,
            output_tokens=7,
            total_tokens=52,
            input_token_details={"cache_read": 30, "cache_creation": 5},
        )
    )

    counts = reported_token_counts(message)

    assert counts is not None
    assert counts.prompt_tokens == 45  # not 45 + 30 + 5
    assert counts.cached_tokens == 30
    assert counts.cache_write_tokens == 5
    assert counts.completion_tokens == 7
    assert counts.total_tokens == 52
    _assert_consistent(counts)


def test_usage_metadata_anthropic_cache_ttl_keys_count_as_cache_writes_once() -> None:
    # With a TTL breakdown langchain-anthropic zeroes the generic "cache_creation".
    message = _with_usage(
        UsageMetadata(
            input_tokens=45,
            output_tokens=7,
            total_tokens=52,
            input_token_details={
                "cache_read": 30,
                "cache_creation": 0,
                "ephemeral_5m_input_tokens": 3,
                "ephemeral_1h_input_tokens": 2,
            },
        )
    )

    counts = reported_token_counts(message)

    assert counts is not None
    assert (counts.prompt_tokens, counts.cached_tokens, counts.cache_write_tokens) == (45, 30, 5)


@pytest.mark.parametrize("tier", ["flex", "priority"])
def test_usage_metadata_openai_service_tier_keys(tier: str) -> None:
    # langchain-openai files a flex/priority response's details under prefixed keys.
    from langchain_openai.chat_models.base import _create_usage_metadata

    usage = _create_usage_metadata(
        {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 20},
        },
        tier,
    )
    assert usage["input_token_details"].get("cache_read") is None  # the shape we must handle

    counts = reported_token_counts(_with_usage(usage))

    assert counts == TokenCounts(
        prompt_tokens=100, completion_tokens=50, cached_tokens=40, reasoning_tokens=20
    )


def test_usage_metadata_from_real_langchain_openai_conversion() -> None:
    from langchain_openai.chat_models.base import _create_usage_metadata

    usage = _create_usage_metadata(
        {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0},
        }
    )

    counts = reported_token_counts(_with_usage(usage))

    assert counts == TokenCounts(
        prompt_tokens=100, completion_tokens=50, cached_tokens=40, reasoning_tokens=20
    )


def test_usage_metadata_from_real_langchain_anthropic_conversion() -> None:
    chat_models = pytest.importorskip("langchain_anthropic.chat_models")
    anthropic_types = pytest.importorskip("anthropic.types")
    create_usage_metadata = getattr(chat_models, "_create_usage_metadata", None)
    if create_usage_metadata is None:
        pytest.skip("langchain_anthropic.chat_models._create_usage_metadata no longer exists")

    usage = anthropic_types.Usage(
        input_tokens=10,
        output_tokens=7,
        cache_read_input_tokens=30,
        cache_creation_input_tokens=5,
    )
    message = _with_usage(create_usage_metadata(usage))

    counts = reported_token_counts(message)

    assert counts is not None
    assert counts.prompt_tokens == 45
    assert counts.cached_tokens == 30
    assert counts.cache_write_tokens == 5
    assert counts.completion_tokens == 7
    assert counts.total_tokens == 52
    _assert_consistent(counts)


def test_usage_metadata_wins_over_response_metadata() -> None:
    message = _with_usage(
        UsageMetadata(input_tokens=12, output_tokens=3, total_tokens=15),
        response_metadata={"token_usage": {"prompt_tokens": 999, "completion_tokens": 999}},
    )

    counts = reported_token_counts(message)

    assert counts is not None
    assert (counts.prompt_tokens, counts.completion_tokens) == (12, 3)


# --- Streaming: chunks summed the way LangChain sums them -------------------------------


def test_streamed_openai_usage_on_final_chunk() -> None:
    chunks = [
        AIMessageChunk(content="Hel"),
        AIMessageChunk(content="lo"),
        AIMessageChunk(
            content="",
            usage_metadata=UsageMetadata(
                input_tokens=100,
                output_tokens=50,
                total_tokens=150,
                input_token_details={"cache_read": 40},
                output_token_details={"reasoning": 20},
            ),
        ),
    ]
    message = chunks[0] + chunks[1] + chunks[2]

    counts = reported_token_counts(message)

    assert counts == TokenCounts(
        prompt_tokens=100, completion_tokens=50, cached_tokens=40, reasoning_tokens=20
    )


def test_streamed_anthropic_usage_from_message_delta() -> None:
    chat_models = pytest.importorskip("langchain_anthropic.chat_models")
    anthropic_types = pytest.importorskip("anthropic.types")
    create_usage_metadata = getattr(chat_models, "_create_usage_metadata", None)
    if create_usage_metadata is None:
        pytest.skip("langchain_anthropic.chat_models._create_usage_metadata no longer exists")
    delta_usage = anthropic_types.Usage(
        input_tokens=10, output_tokens=7, cache_read_input_tokens=30, cache_creation_input_tokens=5
    )
    chunks = [
        AIMessageChunk(content="", response_metadata={"model_name": "claude"}),
        AIMessageChunk(content="Hi"),
        AIMessageChunk(
            content="",
            usage_metadata=create_usage_metadata(delta_usage),
            response_metadata={"stop_reason": "end_turn"},
        ),
    ]
    message = chunks[0] + chunks[1] + chunks[2]

    counts = reported_token_counts(message)

    assert counts is not None
    assert (counts.prompt_tokens, counts.cached_tokens, counts.completion_tokens) == (45, 30, 7)
    assert counts.total_tokens == 52


# --- Raw response_metadata fallback ------------------------------------------------------


def test_response_metadata_openai_shape() -> None:
    message = _with_metadata(
        {
            "token_usage": {
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 20},
            }
        }
    )

    counts = reported_token_counts(message)

    assert counts == TokenCounts(
        prompt_tokens=100, completion_tokens=50, cached_tokens=40, reasoning_tokens=20
    )
    assert counts.total_tokens == 150


def test_response_metadata_openai_shape_with_null_details() -> None:
    message = _with_metadata(
        {
            "token_usage": {
                "prompt_tokens": 9,
                "completion_tokens": 4,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            }
        }
    )

    assert reported_token_counts(message) == TokenCounts(prompt_tokens=9, completion_tokens=4)


def test_response_metadata_anthropic_shape_adds_cache_into_prompt() -> None:
    message = _with_metadata(
        {
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": 5,
                "output_tokens": 7,
            }
        }
    )

    counts = reported_token_counts(message)

    assert counts is not None
    assert counts.prompt_tokens == 45
    assert counts.cached_tokens == 30
    assert counts.cache_write_tokens == 5
    assert counts.completion_tokens == 7
    assert counts.total_tokens == 52
    _assert_consistent(counts)


def test_response_metadata_anthropic_shape_with_null_cache_fields() -> None:
    message = _with_metadata(
        {
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": None,
                "cache_creation_input_tokens": None,
                "output_tokens": 7,
            }
        }
    )

    assert reported_token_counts(message) == TokenCounts(prompt_tokens=10, completion_tokens=7)


# --- Invariants --------------------------------------------------------------------------

_SHAPES: list[AIMessage] = [
    _with_usage(
        UsageMetadata(
            input_tokens=100,
            output_tokens=50,
            total_tokens=150,
            input_token_details={"cache_read": 40},
            output_token_details={"reasoning": 20},
        )
    ),
    _with_usage(
        UsageMetadata(
            input_tokens=45,
            output_tokens=7,
            total_tokens=52,
            input_token_details={"cache_read": 30, "cache_creation": 5},
        )
    ),
    _with_metadata(
        {
            "token_usage": {
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 100},
            }
        }
    ),
    _with_metadata(
        {
            "usage": {
                "input_tokens": 0,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": 5,
                "output_tokens": 7,
            }
        }
    ),
]


@pytest.mark.parametrize("message", _SHAPES)
def test_a_cached_token_is_never_counted_twice(message: AIMessage) -> None:
    counts = reported_token_counts(message)

    assert counts is not None
    _assert_consistent(counts)
    assert counts.total_tokens == counts.prompt_tokens + counts.completion_tokens


@pytest.mark.parametrize(
    "message",
    [
        AIMessage(content="no usage at all"),
        AIMessage(content="", response_metadata={"finish_reason": "stop"}),
        _with_metadata({"token_usage": "not a mapping"}),
        _with_metadata({"usage": {"something_else": 3}}),
    ],
)
def test_missing_usage_is_none(message: AIMessage) -> None:
    assert reported_token_counts(message) is None


@pytest.mark.parametrize(
    "message",
    [
        _with_usage(UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)),
        _with_metadata({"token_usage": {"prompt_tokens": 0, "completion_tokens": 0}}),
        _with_metadata({"usage": {"input_tokens": 0, "output_tokens": 0}}),
    ],
)
def test_all_zero_usage_is_none(message: AIMessage) -> None:
    assert reported_token_counts(message) is None


def test_details_larger_than_totals_are_clamped_in_usage_metadata() -> None:
    message = _with_usage(
        UsageMetadata(
            input_tokens=10,
            output_tokens=5,
            total_tokens=15,
            input_token_details={"cache_read": 50, "cache_creation": 20},
            output_token_details={"reasoning": 9},
        )
    )

    counts = reported_token_counts(message)

    assert counts is not None
    assert counts.prompt_tokens == 10
    assert counts.cached_tokens == 10
    assert counts.cache_write_tokens == 0
    assert counts.completion_tokens == 5
    assert counts.reasoning_tokens == 5
    _assert_consistent(counts)


def test_details_larger_than_totals_are_clamped_in_response_metadata() -> None:
    message = _with_metadata(
        {
            "token_usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 11},
                "completion_tokens_details": {"reasoning_tokens": 6},
            }
        }
    )

    counts = reported_token_counts(message)

    assert counts == TokenCounts(
        prompt_tokens=10, completion_tokens=5, cached_tokens=10, reasoning_tokens=5
    )


def test_negative_or_non_integer_numbers_are_ignored() -> None:
    message = _with_metadata(
        {
            "token_usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": -3},
                "completion_tokens_details": {"reasoning_tokens": "2"},
            }
        }
    )

    assert reported_token_counts(message) == TokenCounts(prompt_tokens=10, completion_tokens=5)


# --- Our own estimate --------------------------------------------------------------------


def test_estimate_of_a_non_empty_exchange() -> None:
    inputs = [SystemMessage("You are terse."), HumanMessage("What is the capital of France?")]
    output = AIMessage(content="Paris is the capital of France.")

    counts = estimated_token_counts(inputs, output)

    assert counts.prompt_tokens > 0
    assert counts.completion_tokens > 0
    assert counts.cached_tokens == 0
    assert counts.total_tokens == counts.prompt_tokens + counts.completion_tokens


def test_estimate_counts_tool_calls_as_completion() -> None:
    output = AIMessage(
        content="",
        tool_calls=[{"name": "calculator", "args": {"expression": "2+2"}, "id": "c1"}],
    )

    counts = estimated_token_counts([HumanMessage("2+2?")], output)

    assert counts.prompt_tokens > 0
    assert counts.completion_tokens > 0


def test_estimate_of_an_empty_answer_has_no_completion() -> None:
    counts = estimated_token_counts([HumanMessage("hi")], AIMessage(content=""))

    assert counts.prompt_tokens > 0
    assert counts.completion_tokens == 0


# --- Credible or estimated: call_token_counts ---------------------------------------------


def test_call_counts_take_a_complete_report_as_is() -> None:
    message = _with_usage(UsageMetadata(input_tokens=40, output_tokens=5, total_tokens=45))

    measured = call_token_counts([HumanMessage("hi")], message)

    assert measured == CallTokens(TokenCounts(prompt_tokens=40, completion_tokens=5), False)


def test_call_counts_estimate_a_zero_prompt_for_a_non_empty_prompt() -> None:
    # What plain langchain-anthropic reports for Anthropic's documented stream shape.
    inputs = [HumanMessage("Tell me about lighthouses, please.")]
    message = _with_usage(UsageMetadata(input_tokens=0, output_tokens=9, total_tokens=9))

    measured = call_token_counts(inputs, message)

    assert measured.estimated is True
    assert measured.filled == ("prompt",)
    assert measured.counts.prompt_tokens == estimated_token_counts(inputs, message).prompt_tokens
    assert measured.counts.completion_tokens == 9  # the reported side is kept
    _assert_consistent(measured.counts)


def test_call_counts_estimate_a_zero_completion_for_a_non_empty_answer() -> None:
    message = _with_usage(UsageMetadata(input_tokens=30, output_tokens=0, total_tokens=30))

    measured = call_token_counts([HumanMessage("hi")], message)

    assert measured.filled == ("completion",)
    assert measured.counts.prompt_tokens == 30
    assert measured.counts.completion_tokens > 0


def test_call_counts_keep_a_zero_completion_for_an_empty_answer() -> None:
    message = AIMessage(
        content="", usage_metadata=UsageMetadata(input_tokens=30, output_tokens=0, total_tokens=30)
    )

    measured = call_token_counts([HumanMessage("hi")], message)

    assert measured == CallTokens(TokenCounts(prompt_tokens=30), False)


def test_call_counts_without_a_report_are_all_estimated() -> None:
    measured = call_token_counts([HumanMessage("hi")], AIMessage(content="hello"))

    assert measured.estimated is True
    assert measured.filled == ()
    assert measured.counts.prompt_tokens > 0
    assert measured.counts.completion_tokens > 0

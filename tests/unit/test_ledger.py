"""The call ledger: every model call that happened is closed with usage, never dropped."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from structlog.testing import capture_logs

from chatter.domain.enums import LLMCallStatus, UsageSource
from chatter.domain.usage import TokenCounts, Usage
from chatter.providers.pricing import Pricer
from chatter.providers.registry import ProviderRegistry, ResolvedModel
from chatter.settings import Settings
from chatter.workflows.ledger import CallLedger, finish_reason, usage_of_call

LOCAL_URL = "http://127.0.0.1:9/v1"


@pytest.fixture(autouse=True)
def _no_chatter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CHATTER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def pricer() -> Pricer:
    return Pricer({})


@pytest.fixture
def registry(pricer: Pricer) -> ProviderRegistry:
    return ProviderRegistry(Settings(_env_file=None, openai_base_url=LOCAL_URL), pricer)


@pytest.fixture
def openai(registry: ProviderRegistry) -> ResolvedModel:
    return registry.resolve("openai", "gpt-4o-mini")


@pytest.fixture
def ledger(pricer: Pricer) -> CallLedger:
    return CallLedger(pricer)


def _inputs() -> list[BaseMessage]:
    return [HumanMessage("Tell me a short story about a lighthouse keeper.")]


_REPORTED = UsageMetadata(
    input_tokens=120,
    output_tokens=30,
    total_tokens=150,
    input_token_details={"cache_read": 100},
    output_token_details={"reasoning": 10},
)
_REPORTED_TOKENS = TokenCounts(
    prompt_tokens=120, completion_tokens=30, cached_tokens=100, reasoning_tokens=10
)


def test_interrupt_without_usage_estimates_what_was_received(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(AIMessageChunk(content="Once upon a time, "))
    call.add_chunk(AIMessageChunk(content="a keeper lit the lamp."))

    record = ledger.interrupt(call, LLMCallStatus.PARTIAL, "cancelled by the client")

    assert record.status == "partial"
    assert record.error == "cancelled by the client"
    assert record.usage.source is UsageSource.ESTIMATED
    assert record.usage.prompt_tokens > 0
    assert record.usage.completion_tokens > 0
    assert record.usage.cost_known is True
    assert record.usage.cost > 0
    assert record.price_source == "genai-prices"
    assert record.content == "Once upon a time, a keeper lit the lamp."
    assert (record.provider, record.model, record.node) == ("openai", "gpt-4o-mini", "agent")
    assert record.call_id == call.call_id
    assert record.finish_reason is None
    assert ledger.records == [record]


def test_interrupt_keeps_usage_the_provider_reported_before_the_break(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(AIMessageChunk(content="The end."))
    call.add_chunk(AIMessageChunk(content="", usage_metadata=_REPORTED))

    record = ledger.interrupt(call, LLMCallStatus.FAILED, "connection reset")

    assert record.status == "failed"
    assert record.usage.source is UsageSource.PROVIDER
    assert record.usage.tokens == _REPORTED_TOKENS
    assert record.usage.total_tokens == 150


def test_interrupt_with_usage_but_no_content_still_records_usage(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(AIMessageChunk(content="", usage_metadata=_REPORTED))

    record = ledger.interrupt(call, LLMCallStatus.FAILED, "broken stream")

    assert record.usage.source is UsageSource.PROVIDER
    assert record.usage.tokens == _REPORTED_TOKENS


def test_interrupt_of_a_call_that_received_nothing_used_nothing(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    call = ledger.open("agent", openai, _inputs())

    record = ledger.interrupt(call, LLMCallStatus.FAILED, "timeout")

    assert record.usage == Usage(source=UsageSource.ESTIMATED)
    assert record.usage.total_tokens == 0
    assert record.usage.cost == Decimal(0)
    assert record.price_source == "none"
    assert record.status == "failed"
    assert record.content == ""
    assert record.time_to_first_token_ms is None


def test_interrupt_after_only_empty_chunks_estimates_the_prompt(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(AIMessageChunk(content="", response_metadata={"model_name": "gpt-4o-mini"}))

    record = ledger.interrupt(call, LLMCallStatus.FAILED, "timeout")

    # The stream had started: the prompt was processed (and billed) though no text came.
    assert record.usage.source == UsageSource.ESTIMATED
    assert record.usage.prompt_tokens > 0
    assert record.usage.completion_tokens == 0
    assert record.time_to_first_token_ms is None


def test_interrupt_during_a_tool_call_estimates_the_call(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": "calculator", "args": '{"expression": "2+2"}', "id": "c1", "index": 0}
            ],
        )
    )

    record = ledger.interrupt(call, LLMCallStatus.PARTIAL, "cancelled")

    assert record.usage.source is UsageSource.ESTIMATED
    assert record.usage.completion_tokens > 0
    assert record.time_to_first_token_ms is not None


def test_finish_with_usage_is_the_providers(ledger: CallLedger, openai: ResolvedModel) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(AIMessageChunk(content="Done."))
    message = AIMessage(
        content="Done.",
        usage_metadata=_REPORTED,
        response_metadata={"finish_reason": "stop"},
    )

    record = ledger.finish(call, message)

    assert record.status == "succeeded"
    assert record.error is None
    assert record.finish_reason == "stop"
    assert record.usage.source is UsageSource.PROVIDER
    assert record.usage.tokens == _REPORTED_TOKENS
    assert record.usage.cost_known is True
    assert record.price_source == "genai-prices"
    expected, _ = usage_of_call(openai, Pricer({}), _inputs(), message)
    assert record.usage == expected


def test_finish_without_usage_is_estimated(ledger: CallLedger, openai: ResolvedModel) -> None:
    call = ledger.open("agent", openai, _inputs())

    record = ledger.finish(
        call, AIMessage(content="Done.", response_metadata={"stop_reason": "end_turn"})
    )

    assert record.usage.source is UsageSource.ESTIMATED
    assert record.usage.prompt_tokens > 0
    assert record.usage.completion_tokens > 0
    assert record.finish_reason == "end_turn"


def test_ttft_is_recorded_when_content_arrived(ledger: CallLedger, openai: ResolvedModel) -> None:
    call = ledger.open("agent", openai, _inputs())
    call.add_chunk(AIMessageChunk(content=""))  # a role-only first chunk is not a token
    assert call.ttft_ms is None
    call.add_chunk(AIMessageChunk(content="Hi"))
    first = call.first_token_at
    call.add_chunk(AIMessageChunk(content=" there"))
    assert call.first_token_at == first  # only the first content chunk counts

    record = ledger.finish(call, AIMessage(content="Hi there", usage_metadata=_REPORTED))

    assert record.time_to_first_token_ms is not None
    assert 0 <= record.time_to_first_token_ms <= record.latency_ms


def test_no_ttft_without_content(ledger: CallLedger, openai: ResolvedModel) -> None:
    call = ledger.open("agent", openai, _inputs())

    record = ledger.finish(call, AIMessage(content="", usage_metadata=_REPORTED))

    assert record.time_to_first_token_ms is None


def test_interrupt_open_calls_closes_only_what_is_still_open(
    ledger: CallLedger, openai: ResolvedModel
) -> None:
    done = ledger.open("agent", openai, _inputs())
    finished = ledger.finish(done, AIMessage(content="ok", usage_metadata=_REPORTED))
    streaming = ledger.open("agent", openai, _inputs())
    streaming.add_chunk(AIMessageChunk(content="partial"))
    silent = ledger.open("summary", openai, _inputs())

    interrupted = ledger.interrupt_open_calls(LLMCallStatus.FAILED, "shutdown")

    assert {r.call_id for r in interrupted} == {streaming.call_id, silent.call_id}
    assert ledger.interrupt_open_calls(LLMCallStatus.FAILED, "again") == []
    assert [r.call_id for r in ledger.records] == [
        finished.call_id,
        streaming.call_id,
        silent.call_id,
    ]
    by_id = {r.call_id: r for r in interrupted}
    assert by_id[streaming.call_id].usage.source is UsageSource.ESTIMATED
    assert by_id[streaming.call_id].usage.total_tokens > 0
    assert by_id[silent.call_id].usage.total_tokens == 0


def test_demo_calls_are_free(ledger: CallLedger, registry: ProviderRegistry) -> None:
    call = ledger.open("agent", registry.resolve(None, None), _inputs())
    call.add_chunk(AIMessageChunk(content="Hello from the demo."))

    record = ledger.interrupt(call, LLMCallStatus.PARTIAL, "cancelled")

    assert record.price_source == "free"
    assert record.usage.cost == Decimal(0)
    assert record.usage.cost_known is True
    assert record.usage.total_tokens > 0


def test_self_hosted_model_without_price_is_recorded_with_unknown_cost(
    ledger: CallLedger, pricer: Pricer
) -> None:
    settings = Settings(_env_file=None, providers={"ollama": {"base_url": LOCAL_URL}})
    resolved = ProviderRegistry(settings, pricer).resolve("ollama", "llama3.2")
    call = ledger.open("agent", resolved, _inputs())

    record = ledger.finish(call, AIMessage(content="Hi", usage_metadata=_REPORTED))

    assert record.usage.tokens == _REPORTED_TOKENS
    assert record.usage.cost_known is False
    assert record.price_source == "unknown"


def test_zero_prompt_report_is_estimated_and_logged(ledger: CallLedger, pricer: Pricer) -> None:
    settings = Settings(_env_file=None, anthropic_api_key="test")
    anthropic = ProviderRegistry(settings, pricer).resolve("anthropic", "claude-3-5-haiku-latest")
    call = ledger.open("model", anthropic, _inputs())
    call.add_chunk(AIMessageChunk(content="Once upon a time."))
    reported = UsageMetadata(input_tokens=0, output_tokens=6, total_tokens=6)
    message = AIMessage(
        content="Once upon a time.",
        usage_metadata=reported,
        response_metadata={"stop_reason": "end_turn"},
    )

    with capture_logs() as logs:
        record = ledger.finish(call, message)

    assert record.usage.source == UsageSource.ESTIMATED
    assert record.usage.prompt_tokens > 0
    assert record.usage.completion_tokens == 6
    assert record.finish_reason == "end_turn"
    (line,) = [entry for entry in logs if entry["event"] == "provider_usage_incomplete"]
    assert (line["provider"], line["model"]) == ("anthropic", "claude-3-5-haiku-latest")
    assert line["estimated"] == ["prompt"]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"finish_reason": "stop"}, "stop"),
        ({"stop_reason": "tool_use"}, "tool_use"),
        ({"model_name": "m"}, None),  # a stream that ended before the model said so
        ({"finish_reason": None, "stop_reason": None}, None),
    ],
)
def test_finish_reason(metadata: dict[str, Any], expected: str | None) -> None:
    assert finish_reason(AIMessageChunk(content="x", response_metadata=metadata)) == expected

"""Read a model call's token usage off its message, normalised to one convention.

The one place where provider semantics are reconciled (see domain/usage.py):
- LangChain's `usage_metadata` already counts cache reads and writes in `input_tokens`
  for both OpenAI and Anthropic, so it is taken as is.
- Raw `response_metadata` differs: OpenAI's `prompt_tokens` includes cached tokens,
  Anthropic's `input_tokens` excludes cache reads and writes, so those are added in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from chatter.domain.usage import TokenCounts
from chatter.providers.tokens import count_message_tokens, count_tokens, count_tool_call_tokens


@dataclass(frozen=True)
class CallTokens:
    """A call's token counts and whether any of them is our estimate."""

    counts: TokenCounts
    estimated: bool
    # Sides ("prompt", "completion") the provider reported as zero although they were not.
    filled: tuple[str, ...] = ()


def call_token_counts(inputs: Sequence[BaseMessage], output: AIMessage) -> CallTokens:
    """The provider's count where it is credible, our estimate where it is missing.

    A reported zero for a side that plainly was not empty (a prompt was sent, text came
    back) is a count that got lost on the way - e.g. Anthropic's input counts in a
    `message_start` nobody read - so that side is estimated instead of stored as zero.
    """
    reported = reported_token_counts(output)
    if reported is None:
        return CallTokens(estimated_token_counts(inputs, output), estimated=True)
    if reported.prompt_tokens and reported.completion_tokens:
        return CallTokens(reported, estimated=False)  # the common case: no tokenizing
    estimate = estimated_token_counts(inputs, output)
    counts, filled = reported, []
    if counts.prompt_tokens == 0 and estimate.prompt_tokens > 0:
        counts = replace(counts, prompt_tokens=estimate.prompt_tokens)
        filled.append("prompt")
    if counts.completion_tokens == 0 and estimate.completion_tokens > 0:
        counts = replace(counts, completion_tokens=estimate.completion_tokens)
        filled.append("completion")
    return CallTokens(counts, estimated=bool(filled), filled=tuple(filled))


def reported_token_counts(message: AIMessage) -> TokenCounts | None:
    """The provider's own count, or None when it reported nothing usable."""
    counts = _from_usage_metadata(message) or _from_response_metadata(message.response_metadata)
    if counts is None or counts.is_empty:
        return None
    return counts


def estimated_token_counts(inputs: Sequence[BaseMessage], output: AIMessage) -> TokenCounts:
    """Our own count with an offline tokenizer, for providers that report nothing."""
    completion = count_tokens(output.text) + count_tool_call_tokens(output.tool_calls)
    return TokenCounts(
        prompt_tokens=count_message_tokens(inputs),
        completion_tokens=max(completion, 1 if output.text or output.tool_calls else 0),
    )


def _from_usage_metadata(message: AIMessage) -> TokenCounts | None:
    usage = message.usage_metadata
    if not usage:
        return None
    input_details: Mapping[str, Any] = usage.get("input_token_details") or {}
    output_details: Mapping[str, Any] = usage.get("output_token_details") or {}
    prompt = _int(usage.get("input_tokens"))
    completion = _int(usage.get("output_tokens"))
    cache_write = (
        _tiered(input_details, "cache_creation")
        + _int(input_details.get("ephemeral_5m_input_tokens"))
        + _int(input_details.get("ephemeral_1h_input_tokens"))
    )
    return _bounded(
        prompt,
        completion,
        cached=_tiered(input_details, "cache_read"),
        reasoning=_tiered(output_details, "reasoning"),
        cache_write=cache_write,
    )


# langchain-openai files details of a "flex" or "priority" response under prefixed keys
# ("priority_cache_read"); at most one of each family is present.
_SERVICE_TIER_PREFIXES = ("", "flex_", "priority_")


def _tiered(details: Mapping[str, Any], key: str) -> int:
    return sum(_int(details.get(prefix + key)) for prefix in _SERVICE_TIER_PREFIXES)


def _from_response_metadata(metadata: Mapping[str, Any]) -> TokenCounts | None:
    raw = metadata.get("token_usage") or metadata.get("usage")
    if not isinstance(raw, Mapping):
        return None
    if "prompt_tokens" in raw:  # OpenAI shape: prompt already includes cached tokens
        prompt_details = raw.get("prompt_tokens_details") or {}
        completion_details = raw.get("completion_tokens_details") or {}
        return _bounded(
            _int(raw.get("prompt_tokens")),
            _int(raw.get("completion_tokens")),
            cached=_int(prompt_details.get("cached_tokens")),
            reasoning=_int(completion_details.get("reasoning_tokens")),
        )
    if "input_tokens" in raw:  # Anthropic shape: cache reads and writes reported apart
        cached = _int(raw.get("cache_read_input_tokens"))
        cache_write = _int(raw.get("cache_creation_input_tokens"))
        return _bounded(
            _int(raw.get("input_tokens")) + cached + cache_write,
            _int(raw.get("output_tokens")),
            cached=cached,
            cache_write=cache_write,
        )
    return None


def _bounded(
    prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0, cache_write: int = 0
) -> TokenCounts:
    # A provider that reports details larger than their totals would break the invariants;
    # clamp rather than store impossible numbers.
    cached = min(cached, prompt)
    return TokenCounts(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=min(reasoning, completion),
        cache_write_tokens=min(cache_write, prompt - cached),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0

"""Chatter's usage in each wire format's convention: the one place that converts.

Chatter stores `prompt_tokens` with cache reads and writes included (docs/accounting.md).
OpenAI's `prompt_tokens` includes them too, with `cached_tokens` a part of it; Anthropic's
`input_tokens` excludes both, reported apart as `cache_read_input_tokens` and
`cache_creation_input_tokens`. Either way the client gets the numbers the LLMCall rows hold.
"""

from __future__ import annotations

from typing import Any

from chatter.domain.usage import Usage


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    tokens = usage.tokens
    return {
        "input_tokens": tokens.prompt_tokens - tokens.cached_tokens - tokens.cache_write_tokens,
        "output_tokens": tokens.completion_tokens,
        "cache_read_input_tokens": tokens.cached_tokens,
        "cache_creation_input_tokens": tokens.cache_write_tokens,
    }

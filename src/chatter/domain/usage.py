"""Usage: what one or more model calls consumed, and what it cost.

Convention (LangChain's and genai-prices'): `prompt_tokens` counts every input token,
cache reads and writes included; `cached_tokens` is the part of the prompt read from cache;
`reasoning_tokens` the part of the completion spent reasoning; total = prompt + completion.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chatter.domain.enums import UsageSource

ZERO_COST = Decimal(0)


@dataclass(frozen=True)
class TokenCounts:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # Only for pricing: Anthropic bills cache writes at their own rate. Part of prompt_tokens.
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        counts = (
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "cache_write_tokens",  # a negative one would let cached exceed prompt below
        )
        for name in counts:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            raise ValueError("cached tokens are part of prompt_tokens and cannot exceed it")
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError("reasoning tokens are part of completion_tokens and cannot exceed it")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def is_empty(self) -> bool:
        return self.prompt_tokens == 0 and self.completion_tokens == 0


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of model calls. Never optional: unreported usage is *estimated*."""

    tokens: TokenCounts = TokenCounts()
    cost: Decimal = ZERO_COST
    cost_known: bool = True
    currency: str = "USD"
    source: UsageSource = UsageSource.PROVIDER

    @property
    def prompt_tokens(self) -> int:
        return self.tokens.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.tokens.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.tokens.total_tokens

    @property
    def cached_tokens(self) -> int:
        return self.tokens.cached_tokens

    @property
    def reasoning_tokens(self) -> int:
        return self.tokens.reasoning_tokens

    def __add__(self, other: Usage) -> Usage:
        if self.currency != other.currency and not (self.cost == 0 or other.cost == 0):
            raise ValueError(f"cannot add costs in {self.currency} and {other.currency}")
        a, b = self.tokens, other.tokens
        estimated = UsageSource.ESTIMATED in (self.source, other.source)
        return Usage(
            tokens=TokenCounts(
                prompt_tokens=a.prompt_tokens + b.prompt_tokens,
                completion_tokens=a.completion_tokens + b.completion_tokens,
                cached_tokens=a.cached_tokens + b.cached_tokens,
                reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
                cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
            ),
            cost=self.cost + other.cost,
            cost_known=self.cost_known and other.cost_known,
            currency=self.currency if self.cost != 0 else other.currency,
            source=UsageSource.ESTIMATED if estimated else UsageSource.PROVIDER,
        )


def total_usage(usages: list[Usage]) -> Usage:
    total = Usage()
    for usage in usages:
        total = total + usage
    return total

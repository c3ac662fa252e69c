"""Cost of a call: configured overrides first, then genai-prices' offline price data."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from chatter.domain.usage import TokenCounts
from chatter.settings import PriceOverride

PER_MILLION = Decimal(1_000_000)
# Each call's cost is rounded once, here, to what the database stores (10 places), so every
# total built from calls equals the sum of the stored call costs exactly.
COST_QUANTUM = Decimal("1e-10")
GENAI_PRICES = "genai-prices"


@dataclass(frozen=True)
class Price:
    cost: Decimal
    known: bool
    currency: str
    source: str  # "override", "genai-prices", "free" or "unknown"


UNKNOWN_PRICE = Price(Decimal(0), known=False, currency="USD", source="unknown")
FREE = Price(Decimal(0), known=True, currency="USD", source="free")


class Pricer:
    def __init__(self, overrides: dict[str, PriceOverride]) -> None:
        # Keys are "provider/model" or "model"; the first is more specific and wins.
        self._overrides = overrides

    def has_price(
        self, provider: str, model: str, genai_provider_id: str | None, *, free: bool = False
    ) -> bool:
        return self.price(provider, model, genai_provider_id, TokenCounts(1, 1), free=free).known

    def price(
        self,
        provider: str,
        model: str,
        genai_provider_id: str | None,
        tokens: TokenCounts,
        *,
        free: bool = False,
    ) -> Price:
        if free:
            return FREE
        override = self._overrides.get(f"{provider}/{model}") or self._overrides.get(model)
        if override is not None:
            cost = _override_cost(override, tokens).quantize(COST_QUANTUM, ROUND_HALF_EVEN)
            return Price(cost, True, override.currency, "override")
        if genai_provider_id is None:
            return UNKNOWN_PRICE
        return _genai_price(model, genai_provider_id, tokens)


def _override_cost(prices: PriceOverride, tokens: TokenCounts) -> Decimal:
    # prompt_tokens includes cache reads and writes, completion_tokens includes reasoning:
    # each token is billed once, at the most specific rate configured for it.
    cache_read = prices.input if prices.cache_read is None else prices.cache_read
    cache_write = prices.input if prices.cache_write is None else prices.cache_write
    reasoning = prices.output if prices.reasoning is None else prices.reasoning
    plain_input = tokens.prompt_tokens - tokens.cached_tokens - tokens.cache_write_tokens
    plain_output = tokens.completion_tokens - tokens.reasoning_tokens
    total = (
        plain_input * prices.input
        + tokens.cached_tokens * cache_read
        + tokens.cache_write_tokens * cache_write
        + plain_output * prices.output
        + tokens.reasoning_tokens * reasoning
    )
    return total / PER_MILLION


def _genai_price(model: str, provider_id: str, tokens: TokenCounts) -> Price:
    usage = PriceUsage(
        input_tokens=tokens.prompt_tokens,
        cache_read_tokens=tokens.cached_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
        output_tokens=tokens.completion_tokens,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calculation = calc_price(usage, model, provider_id=provider_id)
    except (LookupError, ValueError):
        return UNKNOWN_PRICE
    cost = Decimal(calculation.total_price).quantize(COST_QUANTUM, ROUND_HALF_EVEN)
    return Price(cost, True, "USD", GENAI_PRICES)

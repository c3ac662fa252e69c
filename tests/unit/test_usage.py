"""Usage arithmetic: exact money, honest flags, and token counts that cannot be impossible."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chatter.domain.enums import UsageSource
from chatter.domain.usage import TokenCounts, Usage, total_usage


def _usage(
    prompt: int = 10,
    completion: int = 5,
    *,
    cached: int = 0,
    reasoning: int = 0,
    cache_write: int = 0,
    cost: str = "0",
    cost_known: bool = True,
    currency: str = "USD",
    source: UsageSource = UsageSource.PROVIDER,
) -> Usage:
    return Usage(
        TokenCounts(prompt, completion, cached, reasoning, cache_write),
        Decimal(cost),
        cost_known,
        currency,
        source,
    )


def test_addition_sums_every_token_count() -> None:
    a = _usage(100, 50, cached=40, reasoning=20, cache_write=10)
    b = _usage(7, 3, cached=2, reasoning=1, cache_write=1)

    total = a + b

    assert total.tokens == TokenCounts(
        prompt_tokens=107,
        completion_tokens=53,
        cached_tokens=42,
        reasoning_tokens=21,
        cache_write_tokens=11,
    )
    assert total.total_tokens == 160 == a.total_tokens + b.total_tokens
    assert (total.prompt_tokens, total.completion_tokens) == (107, 53)
    assert (total.cached_tokens, total.reasoning_tokens) == (42, 21)


def test_addition_of_costs_is_exact() -> None:
    total = _usage(cost="0.1") + _usage(cost="0.2")

    assert total.cost == Decimal("0.3")
    assert isinstance(total.cost, Decimal)


def test_many_small_costs_add_up_exactly() -> None:
    total = total_usage([_usage(cost="0.000001")] * 1000)

    assert total.cost == Decimal("0.001")


def test_cost_known_only_if_every_part_is_known() -> None:
    known = _usage(cost="0.1")
    unknown = _usage(cost_known=False)

    assert (known + known).cost_known is True
    assert (known + unknown).cost_known is False
    assert (unknown + known).cost_known is False


def test_source_is_estimated_if_any_part_is_estimated() -> None:
    provider = _usage(source=UsageSource.PROVIDER)
    estimated = _usage(source=UsageSource.ESTIMATED)

    assert (provider + provider).source is UsageSource.PROVIDER
    assert (provider + estimated).source is UsageSource.ESTIMATED
    assert (estimated + provider).source is UsageSource.ESTIMATED
    assert total_usage([provider, provider, estimated]).source is UsageSource.ESTIMATED


def test_currency_of_a_priced_part_is_kept() -> None:
    free = _usage(cost="0", currency="USD")
    euros = _usage(cost="1.5", currency="EUR")

    assert (free + euros).currency == "EUR"
    assert (euros + free).currency == "EUR"


def test_costs_in_different_currencies_do_not_add() -> None:
    with pytest.raises(ValueError, match="cannot add costs"):
        _usage(cost="1", currency="USD") + _usage(cost="1", currency="EUR")


def test_total_usage_of_nothing_is_zero_from_the_provider() -> None:
    total = total_usage([])

    assert total == Usage()
    assert total.tokens == TokenCounts()
    assert total.total_tokens == 0
    assert total.tokens.is_empty
    assert total.cost == Decimal(0)
    assert total.cost_known is True
    assert total.source is UsageSource.PROVIDER


def test_total_usage_equals_chained_addition() -> None:
    parts = [_usage(1, 2, cost="0.01"), _usage(3, 4, cached=1, cost="0.02"), _usage(5, 6)]

    assert total_usage(parts) == parts[0] + parts[1] + parts[2]


@pytest.mark.parametrize(
    "field",
    [
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cache_write_tokens",
    ],
)
def test_negative_token_counts_are_rejected(field: str) -> None:
    values = {"prompt_tokens": 10, "completion_tokens": 10, field: -1}

    with pytest.raises(ValueError, match="negative"):
        TokenCounts(**values)


def test_cached_tokens_cannot_exceed_prompt() -> None:
    with pytest.raises(ValueError, match="cached"):
        TokenCounts(prompt_tokens=10, cached_tokens=11)


def test_cached_plus_cache_writes_cannot_exceed_prompt() -> None:
    with pytest.raises(ValueError, match="cached"):
        TokenCounts(prompt_tokens=10, cached_tokens=6, cache_write_tokens=5)


def test_negative_cache_writes_cannot_hide_excess_cached_tokens() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenCounts(prompt_tokens=100, cached_tokens=200, cache_write_tokens=-150)


def test_reasoning_tokens_cannot_exceed_completion() -> None:
    with pytest.raises(ValueError, match="reasoning"):
        TokenCounts(completion_tokens=3, reasoning_tokens=4)


def test_boundaries_are_allowed() -> None:
    counts = TokenCounts(
        prompt_tokens=10,
        completion_tokens=4,
        cached_tokens=6,
        reasoning_tokens=4,
        cache_write_tokens=4,
    )

    assert counts.total_tokens == 14
    assert not counts.is_empty

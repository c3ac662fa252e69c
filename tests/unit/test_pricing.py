"""Pricing a call: configured overrides first, then genai-prices' offline data."""

from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest

from chatter.domain.usage import TokenCounts
from chatter.providers.pricing import Pricer
from chatter.settings import PriceOverride


def _genai_total(model: str, provider_id: str, tokens: TokenCounts) -> Decimal:
    usage = genai_prices.Usage(
        input_tokens=tokens.prompt_tokens,
        cache_read_tokens=tokens.cached_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
        output_tokens=tokens.completion_tokens,
    )
    return Decimal(genai_prices.calc_price(usage, model, provider_id=provider_id).total_price)


# --- genai-prices ------------------------------------------------------------------------


def test_openai_price_matches_genai_prices() -> None:
    tokens = TokenCounts(prompt_tokens=1000, completion_tokens=500, cached_tokens=400)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, cache_read_tokens=400, output_tokens=500),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price

    price = Pricer({}).price("openai", "gpt-4o-mini", "openai", tokens)

    assert price.known is True
    assert price.source == "genai-prices"
    assert price.currency == "USD"
    assert isinstance(price.cost, Decimal)
    assert price.cost == Decimal(expected)
    assert price.cost > 0


def test_cached_tokens_are_priced_at_the_cached_rate() -> None:
    pricer = Pricer({})
    uncached = pricer.price(
        "openai", "gpt-4o-mini", "openai", TokenCounts(prompt_tokens=100, completion_tokens=50)
    )
    cached = pricer.price(
        "openai",
        "gpt-4o-mini",
        "openai",
        TokenCounts(prompt_tokens=100, completion_tokens=50, cached_tokens=40),
    )

    assert cached.known
    assert uncached.known
    assert cached.cost < uncached.cost


def test_anthropic_cache_reads_and_writes_match_genai_prices() -> None:
    tokens = TokenCounts(
        prompt_tokens=45, completion_tokens=7, cached_tokens=30, cache_write_tokens=5
    )

    price = Pricer({}).price("anthropic", "claude-3-5-haiku-latest", "anthropic", tokens)

    assert price.known is True
    assert price.cost == _genai_total("claude-3-5-haiku-latest", "anthropic", tokens)


def test_unknown_model_is_unknown_not_an_error() -> None:
    pricer = Pricer({})

    price = pricer.price(
        "openai", "no-such-model-xyz", "openai", TokenCounts(prompt_tokens=10, completion_tokens=5)
    )

    assert price.known is False
    assert price.cost == Decimal(0)
    assert price.source == "unknown"
    assert pricer.has_price("openai", "no-such-model-xyz", "openai") is False
    assert pricer.has_price("openai", "gpt-4o-mini", "openai") is True


def test_unknown_genai_provider_is_unknown() -> None:
    price = Pricer({}).price(
        "mystery", "gpt-4o-mini", "no-such-provider", TokenCounts(prompt_tokens=1)
    )

    assert (price.known, price.cost, price.source) == (False, Decimal(0), "unknown")


def test_self_hosted_model_without_override_is_unknown() -> None:
    # A self-hosted server has no genai-prices provider, even for a well-known model name.
    price = Pricer({}).price("ollama", "gpt-4o-mini", None, TokenCounts(prompt_tokens=10))

    assert (price.known, price.cost, price.source) == (False, Decimal(0), "unknown")


def test_free_model_is_known_and_costs_nothing() -> None:
    price = Pricer({"demo-1": PriceOverride(input=Decimal(1), output=Decimal(1))}).price(
        "demo", "demo-1", None, TokenCounts(prompt_tokens=1000, completion_tokens=1000), free=True
    )

    assert (price.known, price.cost, price.source) == (True, Decimal(0), "free")
    assert Pricer({}).has_price("demo", "demo-1", None, free=True) is True


# --- overrides ---------------------------------------------------------------------------

_OVERRIDE = PriceOverride(
    input=Decimal("2.5"), output=Decimal("10"), cached_input=Decimal("1.25"), currency="EUR"
)


def test_override_math_per_million_tokens_with_cached_rate() -> None:
    tokens = TokenCounts(prompt_tokens=2000, completion_tokens=1000, cached_tokens=500)

    price = Pricer({"my-model": _OVERRIDE}).price("ollama", "my-model", None, tokens)

    # (1500 * 2.5 + 500 * 1.25 + 1000 * 10) / 1M
    assert price.cost == Decimal("0.014375")
    assert (price.known, price.source, price.currency) == (True, "override", "EUR")


def test_override_without_cached_rate_prices_cached_tokens_as_input() -> None:
    override = PriceOverride(input=Decimal("2"), output=Decimal("8"))
    tokens = TokenCounts(prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=250_000)

    price = Pricer({"my-model": override}).price("ollama", "my-model", None, tokens)

    assert price.cost == Decimal("2") + Decimal("4")
    assert price.currency == "USD"


def test_override_cost_is_exact() -> None:
    override = PriceOverride(input=Decimal("0.1"), output=Decimal("0.2"))

    price = Pricer({"m": override}).price(
        "p", "m", None, TokenCounts(prompt_tokens=1, completion_tokens=1)
    )

    assert price.cost == Decimal("0.0000003")


def test_provider_qualified_override_beats_model_override() -> None:
    specific = PriceOverride(input=Decimal(1), output=Decimal(1))
    generic = PriceOverride(input=Decimal(100), output=Decimal(100))
    pricer = Pricer({"ollama/llama3.2": specific, "llama3.2": generic})
    tokens = TokenCounts(prompt_tokens=1_000_000, completion_tokens=0)

    assert pricer.price("ollama", "llama3.2", None, tokens).cost == Decimal(1)
    # Another provider serving the same model name falls back to the model-only key.
    assert pricer.price("vllm", "llama3.2", None, tokens).cost == Decimal(100)


def test_override_beats_genai_prices() -> None:
    override = PriceOverride(input=Decimal(1), output=Decimal(2))
    tokens = TokenCounts(prompt_tokens=1_000_000, completion_tokens=1_000_000)

    for key in ("gpt-4o-mini", "openai/gpt-4o-mini"):
        price = Pricer({key: override}).price("openai", "gpt-4o-mini", "openai", tokens)
        assert (price.cost, price.source) == (Decimal(3), "override")


def test_override_makes_a_self_hosted_model_known() -> None:
    pricer = Pricer({"ollama/llama3.2": PriceOverride(input=Decimal(0), output=Decimal(0))})

    assert pricer.has_price("ollama", "llama3.2", None) is True
    assert pricer.has_price("ollama", "other", None) is False


def test_free_beats_override() -> None:
    pricer = Pricer({"m": PriceOverride(input=Decimal(5), output=Decimal(5))})

    price = pricer.price("p", "m", None, TokenCounts(prompt_tokens=10), free=True)

    assert price.source == "free"


@pytest.mark.parametrize("field", ["input", "output", "cached_input"])
def test_negative_override_prices_are_rejected(field: str) -> None:
    values: dict[str, Decimal] = {"input": Decimal(1), "output": Decimal(1), field: Decimal(-1)}

    with pytest.raises(ValueError, match="greater than or equal"):
        PriceOverride(**values)

"""Pricing a call: configured overrides first, then genai-prices' offline data."""

from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest

from chatter.container import price_overrides
from chatter.domain.usage import TokenCounts
from chatter.providers.pricing import Pricer
from chatter.settings import PriceOverride, Settings


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
    input=Decimal("2.5"), output=Decimal("10"), cache_read=Decimal("1.25"), currency="EUR"
)
# One of each kind of token, in round numbers: 1M prompt tokens of which 200k cache reads and
# 100k cache writes; 500k completion tokens of which 300k reasoning.
_EVERY_KIND = TokenCounts(
    prompt_tokens=1_000_000,
    completion_tokens=500_000,
    cached_tokens=200_000,
    cache_write_tokens=100_000,
    reasoning_tokens=300_000,
)


def _override_price(tokens: TokenCounts, **rates: str) -> Decimal:
    override = PriceOverride(**{name: Decimal(rate) for name, rate in rates.items()})
    price = Pricer({"my-model": override}).price("ollama", "my-model", None, tokens)
    assert (price.known, price.source) == (True, "override")
    return price.cost


def test_override_math_per_million_tokens_with_cache_read_rate() -> None:
    tokens = TokenCounts(prompt_tokens=2000, completion_tokens=1000, cached_tokens=500)

    price = Pricer({"my-model": _OVERRIDE}).price("ollama", "my-model", None, tokens)

    # (1500 * 2.5 + 500 * 1.25 + 1000 * 10) / 1M
    assert price.cost == Decimal("0.014375")
    assert (price.known, price.source, price.currency) == (True, "override", "EUR")


def test_override_with_input_and_output_only_bills_every_token_at_one_of_them() -> None:
    # Cache reads and writes fall back to the input rate, reasoning to the output rate.
    cost = _override_price(_EVERY_KIND, input="2", output="8")

    assert cost == Decimal("2") + Decimal("4")


def test_cache_read_rate_applies_to_cached_tokens_only() -> None:
    cost = _override_price(_EVERY_KIND, input="2", output="8", cache_read="0.5")

    # 800k input at 2, 200k cache reads at 0.5, 500k output at 8.
    assert cost == Decimal("1.6") + Decimal("0.1") + Decimal("4")


def test_cache_write_rate_applies_to_cache_writes_only() -> None:
    cost = _override_price(_EVERY_KIND, input="2", output="8", cache_write="2.5")

    # 900k input at 2 (cache reads included: no cache_read rate), 100k writes at 2.5.
    assert cost == Decimal("1.8") + Decimal("0.25") + Decimal("4")


def test_reasoning_rate_applies_to_reasoning_tokens_and_output_to_the_rest() -> None:
    cost = _override_price(_EVERY_KIND, input="2", output="8", reasoning="12")

    # 1M input at 2; 200k plain output at 8, 300k reasoning at 12.
    assert cost == Decimal("2") + Decimal("1.6") + Decimal("3.6")


def test_every_rate_together() -> None:
    cost = _override_price(
        _EVERY_KIND,
        input="3",
        output="15",
        cache_read="0.3",
        cache_write="3.75",
        reasoning="20",
    )

    # 700k plain input at 3, 200k reads at 0.3, 100k writes at 3.75,
    # 200k plain output at 15, 300k reasoning at 20.
    expected = Decimal("2.1") + Decimal("0.06") + Decimal("0.375") + Decimal("3") + Decimal("6")
    assert cost == expected == Decimal("11.535")


def test_every_rate_on_a_small_call_is_exact_to_the_stored_quantum() -> None:
    tokens = TokenCounts(
        prompt_tokens=1234,
        completion_tokens=567,
        cached_tokens=1000,
        cache_write_tokens=200,
        reasoning_tokens=67,
    )

    cost = _override_price(
        tokens,
        input="0.15",
        output="0.6",
        cache_read="0.075",
        cache_write="0.1875",
        reasoning="1.1",
    )

    # (34*0.15 + 1000*0.075 + 200*0.1875 + 500*0.6 + 67*1.1) / 1M = 491.3 / 1M
    assert cost == Decimal("0.0004913")


def test_zero_rates_are_rates_not_unset() -> None:
    # A free cache read must not fall back to the input rate.
    cost = _override_price(_EVERY_KIND, input="2", output="8", cache_read="0", reasoning="0")

    assert cost == Decimal("1.6") + Decimal("1.6")


def test_old_name_cached_input_still_sets_the_cache_read_rate() -> None:
    old = PriceOverride.model_validate({"input": 2, "output": 8, "cached_input": "0.5"})

    assert old.cache_read == Decimal("0.5")
    assert old == PriceOverride(input=Decimal(2), output=Decimal(8), cache_read=Decimal("0.5"))


def test_cache_read_under_both_names_is_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        PriceOverride.model_validate({"input": 1, "output": 1, "cached_input": 1, "cache_read": 1})


def test_a_misspelt_rate_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="cache_reads"):
        PriceOverride.model_validate({"input": 1, "output": 1, "cache_reads": "0.1"})


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


@pytest.mark.parametrize(
    "field", ["input", "output", "cache_read", "cached_input", "cache_write", "reasoning"]
)
def test_negative_override_prices_are_rejected(field: str) -> None:
    values: dict[str, object] = {"input": 1, "output": 1, field: -1}

    with pytest.raises(ValueError, match="greater than or equal"):
        PriceOverride.model_validate(values)


# --- overrides from the environment --------------------------------------------------------


def test_prices_from_the_environment_take_every_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CHATTER_PRICES",
        '{"gpt-4o-mini": {"input": "0.15", "output": 0.6, "cache_read": "0.075", '
        '"cache_write": 0.1875, "reasoning": "1.1", "currency": "EUR"}}',
    )

    prices = Settings(_env_file=None).prices  # type: ignore[call-arg]

    assert prices == {
        "gpt-4o-mini": PriceOverride(
            input=Decimal("0.15"),
            output=Decimal("0.6"),  # a JSON number, still exact
            cache_read=Decimal("0.075"),
            cache_write=Decimal("0.1875"),
            reasoning=Decimal("1.1"),
            currency="EUR",
        )
    }


def test_provider_prices_from_the_environment_are_keyed_by_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATTER_PROVIDERS__OLLAMA__BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv(
        "CHATTER_PROVIDERS__OLLAMA__PRICES",
        '{"llama3.2": {"input": 1, "output": 2, "cached_input": "0.5", "reasoning": 3}}',
    )
    monkeypatch.setenv("CHATTER_PRICES", '{"llama3.2": {"input": 100, "output": 100}}')

    pricer = Pricer(price_overrides(Settings(_env_file=None)))  # type: ignore[call-arg]

    # 700k plain input at 1, 200k reads at 0.5 (old field name), 100k writes at the input
    # rate; 200k plain output at 2, 300k reasoning at 3.
    ollama = pricer.price("ollama", "llama3.2", None, _EVERY_KIND)
    assert ollama.cost == Decimal("0.7") + Decimal("0.1") + Decimal("0.1") + Decimal(
        "0.4"
    ) + Decimal("0.9")
    # The global, model-only override still prices the same model served elsewhere.
    assert pricer.price("vllm", "llama3.2", None, _EVERY_KIND).cost == Decimal(150)


def test_a_misspelt_rate_in_the_environment_fails_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATTER_PRICES", '{"m": {"input": 1, "output": 1, "cache_reed": 1}}')

    with pytest.raises(ValueError, match="cache_reed"):
        Settings(_env_file=None)  # type: ignore[call-arg]

"""Which providers and models exist, and the chat model built for each (no network)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

from chatter.errors import BadRequest, ProviderNotConfigured, UnknownModel
from chatter.providers.demo import DemoChatModel
from chatter.providers.pricing import Pricer
from chatter.providers.registry import ModelOptions, ProviderRegistry
from chatter.settings import Settings

LOCAL_URL = "http://127.0.0.1:9/v1"  # nothing listens there; nothing is called anyway


@pytest.fixture(autouse=True)
def _no_chatter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's shell must not change what these tests see.
    for name in list(os.environ):
        if name.upper().startswith("CHATTER_"):
            monkeypatch.delenv(name)


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def _registry(**values: Any) -> ProviderRegistry:
    return ProviderRegistry(_settings(**values), Pricer({}))


def test_default_resolves_to_the_demo_model() -> None:
    resolved = _registry().resolve(None, None)

    assert (resolved.provider, resolved.model) == ("demo", "demo-1")
    assert resolved.config.kind == "demo"
    assert resolved.config.free is True


def test_demo_model_explicitly() -> None:
    resolved = _registry().resolve("demo", "demo-1")

    assert (resolved.provider, resolved.model) == ("demo", "demo-1")


def test_unknown_provider_is_a_bad_request_listing_the_available_ones() -> None:
    with pytest.raises(BadRequest) as caught:
        _registry().resolve("nope", None)

    error = caught.value
    assert type(error) is BadRequest
    assert error.status_code == 400
    assert error.details["provider"] == "nope"
    assert error.details["available"] == ["anthropic", "demo", "openai"]


def test_unknown_demo_model_lists_the_available_models() -> None:
    with pytest.raises(UnknownModel) as caught:
        _registry().resolve("demo", "demo-2")

    assert caught.value.details["model"] == "demo-2"
    assert caught.value.details["available"] == ["demo-1"]
    assert caught.value.status_code == 400


def test_openai_without_key_or_base_url_is_not_configured() -> None:
    registry = _registry(openai_api_key=None, openai_base_url=None)

    with pytest.raises(ProviderNotConfigured) as caught:
        registry.resolve("openai", None)

    assert caught.value.details == {"provider": "openai"}
    assert "CHATTER_OPENAI_API_KEY" in caught.value.message


def test_anthropic_without_key_is_not_configured() -> None:
    with pytest.raises(ProviderNotConfigured):
        _registry(anthropic_api_key=None).resolve("anthropic", "claude-3-5-haiku-latest")


def test_openai_with_base_url_and_no_key_builds_a_streaming_usage_model() -> None:
    registry = _registry(openai_base_url=LOCAL_URL)

    resolved = registry.resolve("openai", None)
    model = registry.chat_model(resolved, ModelOptions(temperature=0.0, max_tokens=64))

    assert (resolved.provider, resolved.model) == ("openai", "gpt-4o-mini")
    assert resolved.config.genai_provider_id == "openai"
    assert isinstance(model, ChatOpenAI)
    assert model.stream_usage is True
    assert model.model_name == "gpt-4o-mini"
    assert model.openai_api_base == LOCAL_URL
    assert model.openai_api_key is not None  # a placeholder: the SDK insists on one


def test_openai_with_key_is_configured() -> None:
    resolved = _registry(openai_api_key="sk-test").resolve("openai", "gpt-4o")

    assert (resolved.provider, resolved.model) == ("openai", "gpt-4o")


def test_openai_model_list_restricts_models() -> None:
    registry = _registry(openai_api_key="sk-test", openai_models=["gpt-4o-mini"])

    assert registry.resolve("openai", "gpt-4o-mini").model == "gpt-4o-mini"
    with pytest.raises(UnknownModel) as caught:
        registry.resolve("openai", "gpt-4o")
    assert caught.value.details["available"] == ["gpt-4o-mini"]


def test_anthropic_with_key_builds_a_streaming_usage_model() -> None:
    registry = _registry(anthropic_api_key="sk-ant-test", anthropic_base_url=LOCAL_URL)

    resolved = registry.resolve("anthropic", None)
    model = registry.chat_model(resolved, ModelOptions())

    assert resolved.model == "claude-3-5-haiku-latest"
    assert resolved.config.genai_provider_id == "anthropic"
    assert isinstance(model, ChatAnthropic)
    assert model.stream_usage is True


def test_demo_chat_model() -> None:
    registry = _registry()

    model = registry.chat_model(registry.resolve(None, None), ModelOptions())

    assert isinstance(model, DemoChatModel)


def test_named_provider_from_settings() -> None:
    registry = _registry(providers={"ollama": {"base_url": LOCAL_URL, "default_model": "llama3.2"}})

    resolved = registry.resolve("ollama", None)
    model = registry.chat_model(resolved, ModelOptions())

    assert (resolved.provider, resolved.model) == ("ollama", "llama3.2")
    assert resolved.config.genai_provider_id is None
    assert resolved.config.kind == "openai"
    assert resolved.config.base_url == LOCAL_URL
    assert isinstance(model, ChatOpenAI)
    assert model.stream_usage is True
    # Any model name is accepted when no list is configured.
    assert registry.resolve("ollama", "qwen2.5").model == "qwen2.5"
    assert "ollama" in {config.name for config in registry.providers()}


def test_named_provider_cannot_shadow_a_builtin() -> None:
    registry = _registry(providers={"openai": {"base_url": LOCAL_URL}})

    with pytest.raises(ProviderNotConfigured):
        registry.resolve("openai", None)


def test_provider_names_are_case_insensitive() -> None:
    registry = _registry(
        openai_base_url=LOCAL_URL,
        providers={"Ollama": {"base_url": LOCAL_URL, "default_model": "llama3.2"}},
    )

    assert registry.resolve("DEMO", None).provider == "demo"
    assert registry.resolve("OpenAI", None).provider == "openai"
    assert registry.resolve("OLLAMA", None).provider == "ollama"
    assert registry.resolve("ollama", None).model == "llama3.2"


def test_default_provider_and_model_from_settings() -> None:
    registry = _registry(
        default_provider="openai", default_model="gpt-4o", openai_base_url=LOCAL_URL
    )

    assert registry.resolve(None, None).model == "gpt-4o"
    # Naming the provider picks that provider's own default.
    assert registry.resolve("openai", None).model == "gpt-4o-mini"


def test_settings_parse_named_providers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATTER_PROVIDERS__OLLAMA__BASE_URL", LOCAL_URL)
    monkeypatch.setenv("CHATTER_PROVIDERS__OLLAMA__DEFAULT_MODEL", "llama3.2")

    settings = Settings(_env_file=None)

    assert set(settings.providers) == {"ollama"}
    assert settings.providers["ollama"].base_url == LOCAL_URL
    assert settings.providers["ollama"].default_model == "llama3.2"
    resolved = ProviderRegistry(settings, Pricer({})).resolve("ollama", None)
    assert (resolved.provider, resolved.model) == ("ollama", "llama3.2")
    assert resolved.config.genai_provider_id is None


def test_temperature_limits_follow_the_provider() -> None:
    registry = _registry(anthropic_api_key="test-key", openai_api_key="test-key")
    anthropic = registry.resolve("anthropic", None)
    with pytest.raises(BadRequest) as refused:
        registry.check_options(anthropic, ModelOptions(temperature=1.5))
    assert refused.value.details == {"field": "temperature", "max": 1.0}
    registry.check_options(anthropic, ModelOptions(temperature=1.0))
    registry.check_options(registry.resolve("openai", None), ModelOptions(temperature=1.5))

"""Which providers and models exist, and the LangChain chat model for a (provider, model)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from chatter.errors import BadRequest, ProviderNotConfigured, UnknownModel
from chatter.providers.anthropic_model import AnthropicChatModel
from chatter.providers.demo import DemoChatModel
from chatter.providers.openai_model import OpenAIChatModel
from chatter.providers.pricing import Pricer
from chatter.settings import Settings

DEMO_MODELS = ("demo-1",)
# Local OpenAI-compatible servers accept any key; the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"
# Chat models (each with its SDK client) kept for reuse: building one per turn cost more CPU
# than the turn's SQL, and a fresh SDK client probes the platform in a thread on first use.
CHAT_MODEL_CACHE_SIZE = 256


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str  # "demo" | "openai" | "anthropic"
    default_model: str
    models: tuple[str, ...] = ()  # empty: any model name is accepted
    api_key: SecretStr | None = None
    base_url: str | None = None
    genai_provider_id: str | None = None  # for genai-prices; None for self-hosted servers
    missing_key_hint: str | None = None
    free: bool = False  # the offline demo model costs nothing, knowingly

    @property
    def no_tool_choice(self) -> str | dict[str, str]:
        """The `tool_choice` that forbids tool calls, in this provider's dialect."""
        return {"type": "none"} if self.kind == "anthropic" else "none"

    @property
    def configured(self) -> bool:
        return self.missing_key_hint is None


@dataclass(frozen=True)
class ResolvedModel:
    provider: str
    model: str
    config: ProviderConfig = field(repr=False)


@dataclass(frozen=True)
class ModelOptions:
    temperature: float | None = None
    max_tokens: int | None = None
    # Set by the compatible endpoints (/v1/...); the demo model ignores both.
    top_p: float | None = None
    stop: tuple[str, ...] = ()


class ProviderRegistry:
    def __init__(self, settings: Settings, pricer: Pricer) -> None:
        self._settings = settings
        self._pricer = pricer
        self._providers = {config.name: config for config in _configs(settings)}
        self._chat_models = functools.lru_cache(maxsize=CHAT_MODEL_CACHE_SIZE)(
            self._build_chat_model
        )

    @property
    def pricer(self) -> Pricer:
        return self._pricer

    def providers(self) -> list[ProviderConfig]:
        return list(self._providers.values())

    def resolve(self, provider: str | None, model: str | None) -> ResolvedModel:
        name = (provider or self._settings.default_provider).lower()
        config = self._providers.get(name)
        if config is None:
            raise BadRequest(
                f"Unknown provider '{name}'.",
                details={"provider": name, "available": sorted(self._providers)},
            ) from None
        if not config.configured:
            raise ProviderNotConfigured(
                f"Provider '{name}' is not configured: {config.missing_key_hint}",
                details={"provider": name},
            )
        if model is None:
            default_is_ours = provider is None and name == self._settings.default_provider.lower()
            model = self._settings.default_model if default_is_ours else config.default_model
        if config.models and model not in config.models:
            raise UnknownModel(
                f"Unknown model '{model}' for provider '{name}'.",
                details={"provider": name, "model": model, "available": list(config.models)},
            )
        return ResolvedModel(provider=name, model=model, config=config)

    def check_options(self, resolved: ResolvedModel, options: ModelOptions) -> None:
        """Refuse, before anything is written, options the provider would reject."""
        limit = 1.0 if resolved.config.kind == "anthropic" else 2.0
        if options.temperature is not None and options.temperature > limit:
            raise BadRequest(
                f"temperature must be at most {limit} for provider '{resolved.provider}'.",
                details={"field": "temperature", "max": limit},
            )

    def chat_model(self, resolved: ResolvedModel, options: ModelOptions) -> BaseChatModel:
        """The chat model for these options, shared by every turn that uses them (LangChain
        chat models hold no per-call state; callbacks travel in each call's config)."""
        return self._chat_models(resolved, options)

    def _build_chat_model(self, resolved: ResolvedModel, options: ModelOptions) -> BaseChatModel:
        config = resolved.config
        llm = self._settings.llm
        if config.kind == "demo":
            return DemoChatModel(
                model_name=resolved.model,
                chunk_delay_s=llm.demo_chunk_delay_s,
                temperature=options.temperature,
                max_tokens=options.max_tokens,
            )
        if config.kind == "anthropic":
            return AnthropicChatModel(  # type: ignore[call-arg]
                model_name=resolved.model,
                api_key=config.api_key or SecretStr(PLACEHOLDER_KEY),
                base_url=config.base_url,
                temperature=options.temperature,
                top_p=options.top_p,
                stop=list(options.stop) or None,
                max_tokens_to_sample=options.max_tokens or 1024,
                default_request_timeout=llm.timeout_s,
                max_retries=llm.max_retries,
                stream_usage=True,
            )
        # OpenAI itself wants max_completion_tokens; compatible servers (Ollama, vLLM,
        # llama.cpp) reliably understand only the older max_tokens.
        compatible_server = config.base_url is not None and options.max_tokens is not None
        return OpenAIChatModel(
            model=resolved.model,
            api_key=config.api_key or SecretStr(PLACEHOLDER_KEY),
            base_url=config.base_url,
            temperature=options.temperature,
            top_p=options.top_p,
            stop=list(options.stop) or None,
            max_completion_tokens=None if compatible_server else options.max_tokens,
            extra_body={"max_tokens": options.max_tokens} if compatible_server else None,
            timeout=llm.timeout_s,
            max_retries=llm.max_retries,
            # Off by default with a custom base URL; without it a stream's usage is lost.
            stream_usage=True,
        )


def _configs(settings: Settings) -> list[ProviderConfig]:
    configs = [ProviderConfig("demo", "demo", DEMO_MODELS[0], DEMO_MODELS, free=True)]
    openai_ready = settings.openai_api_key is not None or settings.openai_base_url is not None
    configs.append(
        ProviderConfig(
            "openai",
            "openai",
            settings.openai_default_model,
            tuple(settings.openai_models),
            settings.openai_api_key,
            settings.openai_base_url,
            genai_provider_id="openai",
            missing_key_hint=None if openai_ready else "set CHATTER_OPENAI_API_KEY.",
        )
    )
    configs.append(
        ProviderConfig(
            "anthropic",
            "anthropic",
            settings.anthropic_default_model,
            tuple(settings.anthropic_models),
            settings.anthropic_api_key,
            settings.anthropic_base_url,
            genai_provider_id="anthropic",
            missing_key_hint=None
            if settings.anthropic_api_key is not None
            else "set CHATTER_ANTHROPIC_API_KEY.",
        )
    )
    for name, provider in settings.providers.items():
        if name in {"demo", "openai", "anthropic"}:
            continue
        configs.append(
            ProviderConfig(
                name,
                "openai",
                provider.resolved_default_model,
                tuple(provider.models),
                provider.api_key,
                provider.base_url,
            )
        )
    return configs

"""Configuration, read once in `create_app` from `CHATTER_*` variables and `.env`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production"


class AuthSettings(BaseModel):
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    allow_registration: bool = True
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"


class SecuritySettings(BaseModel):
    """Passwords and response headers (`CHATTER_SECURITY__...`); see docs/security.md."""

    # New passwords (registration, password change, the CLI) at least this long.
    password_min_length: int = Field(default=10, ge=8, le=256)
    # Strict-Transport-Security on responses served over https; 0 leaves the header out.
    hsts_max_age_s: int = Field(default=31_536_000, ge=0)
    # Believe X-Forwarded-Proto (set only behind a reverse proxy that overwrites it).
    trust_forwarded_proto: bool = False


class PriceOverride(BaseModel):
    """Self-hosted or negotiated prices, in currency units per 1M tokens.

    Unset rates fall back the way providers bill: cache reads and cache writes at the input
    rate, reasoning at the output rate. Unknown keys are refused, so a misspelt rate fails at
    startup instead of silently billing at the fallback."""

    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cache_read: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)
    reasoning: Decimal | None = Field(default=None, ge=0)
    currency: str = "USD"

    @model_validator(mode="before")
    @classmethod
    def _accept_cached_input(cls, value: object) -> object:
        # `cached_input` is the name this setting had before cache writes were priced.
        if isinstance(value, dict) and "cached_input" in value:
            if "cache_read" in value:
                raise ValueError("give cache_read or its old name cached_input, not both")
            value = dict(value)
            value["cache_read"] = value.pop("cached_input")
        return value


class ProviderSettings(BaseModel):
    """A named OpenAI-compatible server, e.g. `CHATTER_PROVIDERS__OLLAMA__BASE_URL`."""

    base_url: str
    api_key: SecretStr | None = None
    default_model: str | None = None  # default: the first of `models`
    models: list[str] = Field(default_factory=list)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)

    @property
    def resolved_default_model(self) -> str:
        return self.default_model or (self.models[0] if self.models else "default")


class LLMSettings(BaseModel):
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    history_limit: int = Field(default=50, ge=1, le=1000)
    max_tool_iterations: int = Field(default=5, ge=1, le=50)
    demo_chunk_delay_s: float = Field(default=0.02, ge=0)
    sse_ping_s: float = Field(default=15.0, gt=0)


class WorkflowSettings(BaseModel):
    """Workflow definitions (`CHATTER_WORKFLOWS__...`)."""

    # Node steps a run may take unless its definition sets `max_iterations`.
    max_iterations: int = Field(default=25, ge=1, le=1000)


class EventSettings(BaseModel):
    retention_days: float = Field(default=7, gt=0)
    # Committed events not marked published after this long are republished by the relay.
    relay_grace_s: float = Field(default=5.0, ge=0)
    relay_interval_s: float = Field(default=2.0, gt=0)
    mark_interval_s: float = Field(default=0.5, gt=0)
    cleanup_interval_s: float = Field(default=3600.0, gt=0)
    heartbeat_s: float = Field(default=15.0, gt=0)
    redis_stream: str = "chatter:events"
    redis_stream_maxlen: int = Field(default=100_000, ge=100)


class AnalyticsSettings(BaseModel):
    """Analytics rollups (`CHATTER_ANALYTICS__...`)."""

    # Minute buckets are kept this long; hour and day buckets for ever.
    minute_retention_hours: float = Field(default=48, ge=1)
    cleanup_interval_s: float = Field(default=600.0, gt=0)
    # Rows in the summary's top lists (models, conversations, users).
    top_n: int = Field(default=10, ge=1, le=100)


class WebhookSettings(BaseModel):
    """Outgoing webhooks (`CHATTER_WEBHOOKS__...`)."""

    # Off by default: a user must not be able to make the server call its own network
    # (SSRF). Turn on for receivers on localhost or a private network you trust.
    allow_private_targets: bool = False
    # One delivery attempt, connect to last byte; the receiver should answer fast.
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Attempts in all (the first one included) before a delivery is marked failed.
    max_attempts: int = Field(default=8, ge=1, le=50)
    retry_base_s: float = Field(default=10.0, gt=0)
    retry_factor: float = Field(default=2.0, ge=1)
    retry_max_s: float = Field(default=3600.0, gt=0)
    # Deliveries in flight in this process, and at most this many to one webhook, so a
    # slow receiver cannot take every slot.
    concurrency: int = Field(default=16, ge=1, le=1000)
    per_webhook_concurrency: int = Field(default=4, ge=1, le=100)
    # How often the loops look for work when no event wakes them.
    poll_interval_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    max_per_user: int = Field(default=20, ge=1, le=1000)
    # Finished deliveries (and their attempts) are kept this long in the log.
    log_retention_days: float = Field(default=7, gt=0)


class MonitoringSettings(BaseModel):
    """The live monitoring view (`CHATTER_MONITORING__...`). Every bound here caps memory:
    the view may run for months, so nothing in it grows with traffic."""

    # Finished executions kept in memory (the live view's ring buffer).
    recent_executions: int = Field(default=1000, ge=1, le=1_000_000)
    # Executions in flight tracked at once; beyond it the oldest is dropped from the view.
    max_in_flight: int = Field(default=10_000, ge=1, le=1_000_000)
    # Event ids remembered to drop the duplicates of at-least-once delivery.
    dedupe_ids: int = Field(default=100_000, ge=100, le=10_000_000)
    # Recent executions listed in a stats answer (`workflow_ops`).
    stats_recent_ops: int = Field(default=50, ge=0, le=1000)
    # Durations read from the database per stats answer to compute percentiles from
    # (the newest ones of the window).
    stats_sample_limit: int = Field(default=50_000, ge=100, le=1_000_000)
    # The bus subscription's queue; an overflow is logged (the database stays complete).
    queue_size: int = Field(default=10_000, ge=100, le=1_000_000)


class MetricsSettings(BaseModel):
    """Prometheus `/metrics` (`CHATTER_METRICS__...`)."""

    # A bearer token a scraper may present instead of an admin's credentials.
    scrape_token: SecretStr | None = None


class BudgetSettings(BaseModel):
    """Spend budgets (`CHATTER_BUDGETS__...`, docs/budgets.md)."""

    # Output tokens a turn reserves when its request sets no max_tokens.
    default_reserve_output_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    # A reservation whose turn has not opened (no running execution) this long after
    # admission is released by the sweep: the process died, or the client left first.
    reservation_ttl_s: float = Field(default=300.0, gt=0)
    sweep_interval_s: float = Field(default=30.0, gt=0)


class ExecutionSettings(BaseModel):
    """Who runs an execution, and recovering those of workers that died
    (`CHATTER_EXECUTIONS__...`). Each worker refreshes its heartbeat every `heartbeat_s`;
    every `recovery_interval_s` any worker closes, as failed, the running executions of
    workers whose heartbeat is older than `lease_s`."""

    heartbeat_s: float = Field(default=5.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0)
    recovery_interval_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlasts_heartbeat(self) -> ExecutionSettings:
        if self.lease_s <= self.heartbeat_s:
            raise ValueError(
                f"CHATTER_EXECUTIONS__LEASE_S ({self.lease_s}) must be greater than "
                f"CHATTER_EXECUTIONS__HEARTBEAT_S ({self.heartbeat_s}): a live worker would "
                "lose its executions to recovery between two heartbeats (a few heartbeats "
                "per lease is best, e.g. 5 and 30)"
            )
        return self


class ToolSettings(BaseModel):
    """Tools and MCP tool servers (`CHATTER_TOOLS__...`, docs/tools.md)."""

    # One tool call, start to result; past it the model gets an error result.
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # A result longer than this is cut (for the model, the record, the event and the trace).
    max_result_chars: int = Field(default=10_000, ge=100, le=1_000_000)
    # Arguments whose JSON is longer than this are refused without calling the tool.
    max_argument_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    # Commands an admin may register as stdio MCP servers (exact strings); none by default.
    stdio_allowed_commands: list[str] = Field(default_factory=list)
    # A server's tool list is reloaded after this long; a server that failed to load is
    # retried after `retry_s`; listing its tools waits at most `load_timeout_s`.
    cache_ttl_s: float = Field(default=300.0, gt=0)
    retry_s: float = Field(default=30.0, gt=0)
    load_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # How often a worker re-reads the registered servers (another worker may have changed them).
    servers_refresh_s: float = Field(default=5.0, ge=0)
    # conversation_search: at most this many messages per call.
    search_max_results: int = Field(default=20, ge=1, le=200)


class RateLimitSettings(BaseModel):
    """Rate limits (`CHATTER_RATE_LIMITS__...`), fixed windows counted in Redis when
    `CHATTER_REDIS_URL` is set (shared by every worker), else in this process's memory.
    Admins override the per-user ones per user (`PUT /api/v1/admin/users/{id}/rate-limits`)."""

    enabled: bool = True
    # Model-calling requests (the chat routes) per user per minute, and per API key (unset:
    # the user's own limit, counted for each key on its own).
    requests_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    api_key_requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    # Tokens of finished turns per minute: a turn is refused while the window is spent.
    tokens_per_minute: int = Field(default=200_000, ge=1, le=1_000_000_000)
    api_key_tokens_per_minute: int | None = Field(default=None, ge=1, le=1_000_000_000)
    # Login: failures per account (normalised email) and per client IP within the window
    # lock that account or IP out of logging in for `login_lockout_s`.
    login_max_failures: int = Field(default=10, ge=1, le=10_000)
    login_ip_max_failures: int = Field(default=100, ge=1, le=1_000_000)
    login_window_s: int = Field(default=900, ge=1, le=86_400)
    login_lockout_s: int = Field(default=900, ge=1, le=86_400)
    # Accounts registered per client IP per hour.
    register_per_ip_per_hour: int = Field(default=20, ge=1, le=1_000_000)
    # Redis keys start with this (several deployments, or test databases, can share a Redis).
    redis_prefix: str = Field(default="chatter:ratelimit", min_length=1, max_length=100)


class InputLimitSettings(BaseModel):
    """Input limits (`CHATTER_LIMITS__...`), refused with 413, 431 or 422 before any work."""

    # Request bodies: refused from Content-Length, or as soon as a streamed body passes it.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # Request headers: count, and the bytes of every name and value together.
    max_header_count: int = Field(default=100, ge=10, le=10_000)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_message_chars: int = Field(default=100_000, ge=1, le=10_000_000)
    max_title_chars: int = Field(default=200, ge=1, le=10_000)
    max_system_prompt_chars: int = Field(default=20_000, ge=1, le=10_000_000)
    # Items per page of every paginated list (`limit`).
    max_page_size: int = Field(default=100, ge=1, le=10_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATTER_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./chatter.db"
    # How long a request waits for a database connection before a 503 database_busy.
    database_pool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # SQLite only: "inline" runs it on the event loop's thread (no thread hop per statement;
    # waits for another process's write lock without blocking the loop); "aiosqlite" on a
    # thread per connection, as before.
    database_sqlite_driver: Literal["inline", "aiosqlite"] = "inline"
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    bootstrap_admin: bool = True
    auth: AuthSettings = Field(default_factory=AuthSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    # SQLite serves one machine's worth of traffic; production must say it means it.
    allow_sqlite_in_production: bool = False

    default_provider: str = "demo"
    default_model: str = "demo-1"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_default_model: str = "gpt-4o-mini"
    openai_models: list[str] = Field(default_factory=list)
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_default_model: str = "claude-3-5-haiku-latest"
    anthropic_models: list[str] = Field(default_factory=list)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    # Names the compatible endpoints (/v1/...) accept for `model`, each a "provider/model":
    # CHATTER_MODEL_ALIASES='{"fast": "openai/gpt-4o-mini"}'.
    model_aliases: dict[str, str] = Field(default_factory=dict)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    workflows: WorkflowSettings = Field(default_factory=WorkflowSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    executions: ExecutionSettings = Field(default_factory=ExecutionSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    limits: InputLimitSettings = Field(default_factory=InputLimitSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # Accept a comma-separated string as well as a JSON list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("model_aliases")
    @classmethod
    def _aliases_name_a_provider(cls, value: dict[str, str]) -> dict[str, str]:
        for alias, target in value.items():
            provider, _, model = target.partition("/")
            if not provider or not model:
                raise ValueError(f"alias {alias!r} must map to 'provider/model', not {target!r}")
        return value

    @field_validator("providers", mode="before")
    @classmethod
    def _lowercase_provider_names(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(name).lower(): config for name, config in value.items()}
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        key = self.secret_key.get_secret_value()
        if self.env == "production" and (key in ("", DEFAULT_SECRET_KEY) or len(key) < 32):
            raise ValueError(
                "CHATTER_SECRET_KEY must be set to a random value of at least 32 characters "
                "in production (for example: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        if self.env == "production" and self.is_sqlite and not self.allow_sqlite_in_production:
            raise ValueError(
                "CHATTER_DATABASE_URL is SQLite in production: use PostgreSQL, or set "
                "CHATTER_ALLOW_SQLITE_IN_PRODUCTION=true for a single-machine deployment"
            )
        return self

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        # '*' is served without credentials (see api/security_headers.py); mixed with named
        # origins it would be ambiguous which rule applies.
        if "*" in origins and len(origins) > 1:
            raise ValueError("CHATTER_CORS_ORIGINS: '*' cannot be combined with other origins")
        for origin in origins:
            if origin != "*" and not _is_origin(origin):
                raise ValueError(
                    f"CHATTER_CORS_ORIGINS: {origin!r} is not an origin "
                    "(scheme://host[:port], no path), e.g. https://app.example.com"
                )
        return origins

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _is_origin(value: str) -> bool:
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path == ""
        and not parts.query
        and not parts.fragment
        and parts.username is None
    )

"""The one place that wires engine, sessions and services. Built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatter.domain.ids import new_id
from chatter.events.bus import EventBus, InProcessBus
from chatter.events.publisher import EventPublisher
from chatter.events.redis_bus import RedisStreamBus
from chatter.events.webhook_worker import WebhookWorker
from chatter.observability.call_log import log_model_calls
from chatter.observability.telemetry import Telemetry
from chatter.providers.pricing import Pricer
from chatter.providers.registry import ProviderRegistry
from chatter.services.accounts import AccountService
from chatter.services.analytics import AnalyticsService
from chatter.services.api_keys import ApiKeyService
from chatter.services.auth import AuthService
from chatter.services.budgets import BudgetService
from chatter.services.chat import ChatService
from chatter.services.compat_turns import CompatTurns
from chatter.services.conversations import ConversationService
from chatter.services.credentials import PasswordHasher, TokenIssuer
from chatter.services.events import EventService
from chatter.services.executions import ExecutionService
from chatter.services.login_throttle import LoginThrottle
from chatter.services.monitoring import MonitoringService
from chatter.services.password_policy import PasswordPolicy
from chatter.services.rate_limits import RateLimitService
from chatter.services.rate_windows import RateWindows, build_storage
from chatter.services.recovery import ExecutionRecovery
from chatter.services.tool_servers import (
    DatabaseServerSource,
    MessageSearcher,
    ToolServerService,
    registry_timing,
)
from chatter.services.traces import TraceService
from chatter.services.user_admin import UserAdminService
from chatter.services.webhooks import WebhookService
from chatter.services.workflow_definitions import DefinitionService
from chatter.settings import PriceOverride, Settings
from chatter.storage.db import create_engine, create_session_factory
from chatter.workflows.executor import WorkflowExecutor
from chatter.workflows.templates import builtin_templates
from chatter.workflows.tools import builtin_tools
from chatter.workflows.tools.catalog import ToolCatalog
from chatter.workflows.tools.conversation_search import conversation_search_tool
from chatter.workflows.tools.limits import ToolLimits
from chatter.workflows.tools.registry import ToolRegistry


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    accounts: AccountService
    auth: AuthService
    user_admin: UserAdminService
    api_keys: ApiKeyService
    conversations: ConversationService
    providers: ProviderRegistry
    executor: WorkflowExecutor
    chat: ChatService
    executions: ExecutionService
    publisher: EventPublisher
    events: EventService
    webhooks: WebhookService
    webhook_worker: WebhookWorker
    analytics: AnalyticsService
    monitoring: MonitoringService
    traces: TraceService
    telemetry: Telemetry
    recovery: ExecutionRecovery
    tools: ToolCatalog
    definitions: DefinitionService
    tool_servers: ToolServerService
    rate_limits: RateLimitService
    login_throttle: LoginThrottle
    budgets: BudgetService
    redis: Redis | None = None

    @cached_property
    def compat(self) -> CompatTurns:
        """The OpenAI- and Anthropic-compatible endpoints' turns (through `chat`)."""
        return CompatTurns(
            self.chat,
            self.providers,
            self.settings.model_aliases,
            self.settings.limits.max_message_chars,
        )

    @property
    def worker_id(self) -> str:
        """This process's id in `workers`, stamped on the executions it opens."""
        return self.recovery.worker_id

    @classmethod
    def build(cls, settings: Settings, telemetry: Telemetry | None = None) -> Container:
        telemetry = telemetry or Telemetry()
        engine = create_engine(
            settings.database_url,
            pool_timeout_s=settings.database_pool_timeout_s,
            sqlite_driver=settings.database_sqlite_driver,
        )
        passwords = PasswordHasher()
        tokens = TokenIssuer(
            secret=settings.secret_key.get_secret_value(),
            algorithm=settings.auth.jwt_algorithm,
            access_ttl=timedelta(minutes=settings.auth.access_token_minutes),
            refresh_ttl=timedelta(days=settings.auth.refresh_token_days),
        )
        sessions = create_session_factory(engine)
        providers = ProviderRegistry(settings, Pricer(price_overrides(settings)))
        executor = WorkflowExecutor(
            builtin_templates(),
            max_iterations=settings.workflows.max_iterations,
            max_tool_iterations=settings.llm.max_tool_iterations,
        )
        # Timeouts: a Redis that stops answering must not hang a publish or a read forever
        # (the bus's blocking read waits at most 1 s, well inside them).
        redis = (
            Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
            if settings.redis_url
            else None
        )
        bus: EventBus = (
            RedisStreamBus(redis, settings.events.redis_stream, settings.events.redis_stream_maxlen)
            if redis is not None
            else InProcessBus()
        )
        publisher = EventPublisher(bus, sessions, settings.events)
        # Metrics and the model-call log line follow the events this process commits.
        publisher.add_listener(telemetry.metrics.observe_events)
        publisher.add_listener(log_model_calls)
        conversations = ConversationService(publisher)
        policy = PasswordPolicy(min_length=settings.security.password_min_length)
        auth = AuthService(passwords, tokens, publisher, policy)
        # One id per process start: a restarted worker is a new owner, and the executions
        # its previous life left running are recovered.
        worker_id = new_id()
        tools = tool_registry(settings, sessions)
        definitions = DefinitionService(providers, tools, executor, publisher)
        limits = settings.rate_limits
        windows = RateWindows(build_storage(settings.redis_url, redis, limits.redis_prefix))
        budgets = BudgetService(
            sessions, publisher, providers.pricer, settings.budgets, settings.llm
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            accounts=AccountService(
                passwords, policy, allow_registration=settings.auth.allow_registration
            ),
            auth=auth,
            user_admin=UserAdminService(auth, publisher),
            api_keys=ApiKeyService(publisher),
            conversations=conversations,
            providers=providers,
            executor=executor,
            chat=ChatService(
                sessions,
                providers,
                executor,
                settings.llm,
                publisher,
                conversations,
                telemetry.tracing.tracer,
                worker_id=worker_id,
                tools=tools,
                definitions=definitions,
                tool_limits=ToolLimits(
                    timeout_s=settings.tools.timeout_s,
                    max_result_chars=settings.tools.max_result_chars,
                    max_argument_chars=settings.tools.max_argument_chars,
                ),
                budgets=budgets,
            ),
            executions=ExecutionService(publisher),
            publisher=publisher,
            events=EventService(bus, sessions, settings.events),
            webhooks=WebhookService(settings.webhooks),
            webhook_worker=WebhookWorker(sessions, bus, settings.webhooks),
            analytics=AnalyticsService(sessions, settings.analytics, conversations),
            monitoring=MonitoringService(bus, sessions, settings.monitoring),
            traces=TraceService(publisher),
            telemetry=telemetry,
            recovery=ExecutionRecovery(sessions, publisher, settings.executions, worker_id),
            tools=tools,
            definitions=definitions,
            tool_servers=ToolServerService(tools, settings.tools, publisher),
            rate_limits=RateLimitService(windows, limits, publisher, sessions),
            login_throttle=LoginThrottle(windows, limits, publisher),
            budgets=budgets,
            redis=redis,
        )

    async def aclose(self) -> None:
        await self.chat.aclose()
        await self.tool_servers.aclose()
        # After the turns' closes: what is still running is recoverable at once.
        await self.recovery.aclose()
        await self.budgets.aclose()
        await self.analytics.aclose()
        await self.webhook_worker.aclose()
        await self.monitoring.aclose()
        await self.publisher.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def tool_registry(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> ToolRegistry:
    """Built-ins (conversation_search included) and the registered MCP servers' tools."""
    search = conversation_search_tool(MessageSearcher(sessions), settings.tools.search_max_results)
    builtins = {**builtin_tools(), search.name: search}
    return ToolRegistry(builtins, DatabaseServerSource(sessions), registry_timing(settings.tools))


def price_overrides(settings: Settings) -> dict[str, PriceOverride]:
    """Global overrides plus each named provider's, keyed "provider/model"."""
    overrides = dict(settings.prices)
    for name, provider in settings.providers.items():
        for model, price in provider.prices.items():
            overrides[f"{name}/{model}"] = price
    return overrides

"""The application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from chatter.api.docs import install_docs
from chatter.api.errors import install_error_handlers
from chatter.api.input_limits import check_query_limits, document_input_limits
from chatter.api.openapi import install_openapi
from chatter.api.rate_limiting import RateLimitHeadersMiddleware
from chatter.api.request_limits import RequestLimitsMiddleware
from chatter.api.routers import (
    admin_rate_limits,
    admin_users,
    analytics,
    anthropic_compat,
    auth,
    budgets,
    chat,
    conversations,
    dashboard,
    events,
    executions,
    health,
    metrics,
    monitoring,
    openai_compat,
    providers,
    tool_servers,
    traces,
    webhooks,
    workflow_runs,
    workflows,
)
from chatter.api.security_headers import install_browser_security
from chatter.container import Container
from chatter.observability.http_telemetry import RequestTelemetryMiddleware
from chatter.observability.logging import configure_logging, get_logger
from chatter.observability.request_context import RequestContextMiddleware
from chatter.observability.telemetry import Telemetry
from chatter.providers.tokens import count_tokens
from chatter.settings import Settings
from chatter.storage.migrate import pending_migrations

log = get_logger("chatter.app")


class UnmigratedDatabaseError(RuntimeError):
    pass


async def _check_migrated(container: Container) -> None:
    pending = await pending_migrations(container.engine)
    if pending:
        raise UnmigratedDatabaseError(
            f"The database at {container.engine.url.render_as_string(hide_password=True)} "
            f"is not migrated ({len(pending)} pending migration(s)). "
            "Run `chatter db upgrade` (or `make run`) first."
        )


async def _bootstrap_admin(container: Container) -> None:
    async with container.sessions() as session:
        created = await container.accounts.bootstrap_admin(
            session=session, api_keys=container.api_keys
        )
    if created is None:
        return
    # Printed once, on purpose: the key is not stored anywhere in clear.
    print(
        "\n"
        "  Chatter created a first admin on this empty database.\n"
        f"    email:    {created.user.email}\n"
        f"    password: {created.password}\n"
        f"    API key:  {created.api_key.key}\n"
        "  Save them now; they are not shown again.\n"
        f'  Try: curl -H "Authorization: Bearer {created.api_key.key}" '
        f"{served_url(container.settings)}/api/v1/auth/me\n",
        flush=True,
    )


def served_url(settings: Settings) -> str:
    """A URL that reaches this server: `chatter serve` puts the address it binds in settings."""
    host = settings.host
    # A wildcard bind is reachable on loopback; curl cannot connect to "0.0.0.0" everywhere.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def create_app(settings: Settings | None = None, *, telemetry: Telemetry | None = None) -> FastAPI:
    """`telemetry`: the app's metrics and tracer; by default from the environment
    (`PROMETHEUS_MULTIPROC_DIR`, `OTEL_*`). Tests pass their own (an in-memory exporter)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    telemetry = telemetry or Telemetry.from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = Container.build(settings, telemetry)
        try:
            await _check_migrated(container)
            await container.publisher.start()
            await container.webhook_worker.start()
            await container.analytics.start()
            # Before recovery: the turns it closes are announced, and the view counts them.
            await container.monitoring.start()
            # Registers this worker, then recovers the executions of dead ones (and keeps
            # doing both, periodically, until shutdown).
            await container.recovery.start()
            await container.budgets.start()  # releases reservations of turns that are over
            # Load the offline tokenizer now, not on the first request's event loop.
            await asyncio.to_thread(count_tokens, "warm up")
            if settings.env == "development" and settings.bootstrap_admin:
                await _bootstrap_admin(container)
            app.state.container = container
            log.info("started", env=settings.env)
            yield
        finally:
            await container.aclose()
            telemetry.tracing.flush()
            telemetry.metrics.process_exited()

    app = FastAPI(
        title="Chatter",
        version="0.1.0",
        description="Self-hosted LLM chat and workflow backend where no usage is ever lost.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
        # Marked query parameters (page sizes) are checked against CHATTER_LIMITS__*.
        dependencies=[Depends(check_query_limits)],
    )
    install_error_handlers(app)
    # Inside CORS (so a refusal still carries its headers), before anything reads a body.
    app.add_middleware(RequestLimitsMiddleware, limits=settings.limits)
    app.add_middleware(RateLimitHeadersMiddleware)
    install_browser_security(app, settings)
    # Inside the correlation-id middleware (added last, so outermost): its log line and
    # spans carry the request's correlation id.
    app.add_middleware(RequestTelemetryMiddleware, telemetry=telemetry)
    app.add_middleware(RequestContextMiddleware)
    for router in (
        health.router,
        auth.router,
        budgets.router,
        conversations.router,
        chat.router,
        executions.router,
        providers.router,
        events.router,
        webhooks.router,
        analytics.router,
        monitoring.router,
        traces.router,
        workflows.router,
        workflow_runs.router,
        tool_servers.router,
        dashboard.router,
        metrics.router,
        openai_compat.router,
        anthropic_compat.router,
        admin_users.router,
        admin_rate_limits.router,
    ):
        app.include_router(router)
    install_docs(app)
    install_openapi(app)
    document_input_limits(app, settings.limits)
    return app

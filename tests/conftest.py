"""Fixtures: a fresh migrated database per test module (SQLite file, or PostgreSQL when
CHATTER_TEST_DATABASE_URL is set), the real app over ASGI, and users to act as."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatter.app import create_app
from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.migrate import upgrade_to_head
from fakes.anthropic_server import FakeAnthropicServer
from fakes.openai_server import FakeOpenAIServer

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
UNREACHED_RATE_LIMITS = {
    "requests_per_minute": 1_000_000,
    "tokens_per_minute": 1_000_000_000,
    "register_per_ip_per_hour": 1_000_000,
    "login_ip_max_failures": 1_000_000,
}


@dataclass(frozen=True)
class Actor:
    id: str
    email: str
    password: str
    headers: dict[str, str]


UserFactory = Callable[..., Awaitable[Actor]]


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/load/conftest.py: pytest reads options only from the conftest files
    # it loads before parsing the command line, and `pytest` from the root does not load that.
    group = parser.getgroup("load", "the load-and-fault tests (tests/load)")
    group.addoption(
        "--load-turns", type=int, default=2000, help="Chat turns the load test runs (2000)."
    )
    group.addoption(
        "--load-concurrency", type=int, default=32, help="Turns in flight at once (32)."
    )


async def _create_postgres_database(admin_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    name = f"chatter_test_{new_id().lower()}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))

    async def drop() -> None:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


@pytest.fixture(scope="module")
async def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A database nobody has touched: PostgreSQL when configured, else a SQLite file."""
    admin_url = os.environ.get("CHATTER_TEST_DATABASE_URL")
    if admin_url:
        url, drop = await _create_postgres_database(admin_url)
        try:
            yield url
        finally:
            await drop()
    else:
        path: Path = tmp_path_factory.mktemp("db") / "chatter.db"
        yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module")
async def database_url(empty_database_url: str) -> str:
    engine = create_engine(empty_database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    return empty_database_url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "redis_url": os.environ.get("CHATTER_TEST_REDIS_URL"),
        "openai_api_key": None,
        "anthropic_api_key": None,
        "llm": {"demo_chunk_delay_s": 0.0, "max_retries": 0, "timeout_s": 10},
    }
    # Event ids mean something only within one database: one Redis stream per database.
    stream = f"chatter:test:{hashlib.sha256(database_url.encode()).hexdigest()[:16]}"
    events = overrides.pop("events", {})
    assert isinstance(events, dict)
    values["events"] = {"redis_stream": stream, **events}
    # Rate limit windows too: tests sharing a Redis must not count in each other's windows.
    rate_limits = overrides.pop("rate_limits", {})
    assert isinstance(rate_limits, dict)
    # Limits on, but far from what the suite does; tests of the limits set their own.
    values["rate_limits"] = {
        "redis_prefix": stream.replace(":test:", ":test-rl:"),
        **UNREACHED_RATE_LIMITS,
        **rate_limits,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatter.test") as client:
            yield app, client


@pytest.fixture(scope="module")
async def app_and_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings) as pair:
        yield pair


@pytest.fixture(scope="module")
def app(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return app_and_client[0]


@pytest.fixture(scope="module")
def client(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


@pytest.fixture(scope="module")
def make_user(client: httpx.AsyncClient) -> UserFactory:
    async def _make(email: str | None = None, password: str = "correct horse battery") -> Actor:
        email = email or f"user-{new_id().lower()}@example.com"
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert registered.status_code == 201, registered.text
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        return Actor(
            id=registered.json()["id"],
            email=email,
            password=password,
            headers={"Authorization": f"Bearer {token}"},
        )

    return _make


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A local OpenAI-compatible server on 127.0.0.1; real HTTP, no mocks."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake(fake_openai: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    fake_openai.reset()
    yield fake_openai
    fake_openai.reset()


def openai_settings(database_url: str, server: FakeOpenAIServer, **overrides: object) -> Settings:
    return make_settings(
        database_url,
        openai_base_url=server.base_url,
        openai_api_key="test-key",
        default_provider="openai",
        default_model="gpt-4o-mini",
        **overrides,
    )


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    """A local Anthropic Messages server on 127.0.0.1; real HTTP, no mocks."""
    with FakeAnthropicServer() as server:
        yield server


def anthropic_settings(
    database_url: str, server: FakeAnthropicServer, **overrides: object
) -> Settings:
    return make_settings(
        database_url,
        anthropic_base_url=server.base_url,
        anthropic_api_key="test-key",
        default_provider="anthropic",
        default_model="claude-3-5-haiku-latest",
        **overrides,
    )


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The real app under uvicorn on a free 127.0.0.1 port, in this event loop: needed where
    ASGITransport can't go (a client that really disconnects mid-stream)."""
    async with serve_app(create_app(settings)) as url:
        yield url


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """`live_server` for an app the test built (and may reach into once it started)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A separate engine on the module's database, for checking rows directly."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()

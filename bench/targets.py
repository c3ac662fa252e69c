"""What is measured: the fake upstream called directly (the baseline) and Chatter served by
`chatter serve` as a real process, each as a `Target` the one load client can drive."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import load
from bench.processes import BenchError, Server, child_env, free_port, run_once, started
from bench.scratch_database import scratch_postgres
from chatter.domain.ids import new_id

MODEL = "gpt-4o-mini"
PROMPT = "Hello there, how are you today?"
CHATTER_BIN = Path(sys.executable).parent / "chatter"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """A server under test and the two requests that make one turn on it."""

    name: str
    server: Server
    turn: load.Request  # non-streaming: latency to the whole answer
    stream: load.Request  # streamed: time to the first token
    # Chatter only: the live event stream to time delivery on.
    events_url: str | None = None
    headers: dict[str, str] | None = None

    @property
    def cpu(self) -> Callable[[], float]:
        return self.server.cpu_seconds


def openai_target(name: str, server: Server, headers: dict[str, str]) -> Target:
    """An OpenAI-compatible endpoint: the fake upstream itself, or a proxy in front of it."""
    url = f"{server.base_url}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    return Target(
        name=name,
        server=server,
        turn=load.post_json(url, body, headers),
        stream=load.post_stream(url, stream_body, headers, load.openai_token),
    )


@asynccontextmanager
async def fake_upstream(workdir: Path) -> AsyncIterator[Server]:
    port = free_port()
    command = [sys.executable, "-m", "bench.fake_upstream", "--port", str(port)]
    env = child_env({"PYTHONPATH": str(ROOT)})
    with started("fake-upstream", command, env, workdir, port) as server:
        await server.wait_ready("/v1/models")
        yield server


@asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh database: a SQLite file under `workdir`, or (kind = an admin PostgreSQL URL)
    a new database next to it, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'chatter-{new_id().lower()}.db'}"
        return
    async with scratch_postgres(kind) as url:
        yield url


@asynccontextmanager
async def chatter(
    name: str,
    database_url: str,
    upstream: Server,
    workdir: Path,
    workers: int = 1,
    redis_url: str | None = None,
) -> AsyncIterator[Target]:
    """`chatter db upgrade`, then `chatter serve` on a free port, a user and its API key."""
    cwd = workdir / name
    cwd.mkdir(parents=True, exist_ok=True)
    env = child_env(
        {
            "CHATTER_ENV": "production",
            "CHATTER_SECRET_KEY": secrets.token_urlsafe(48),
            "CHATTER_DATABASE_URL": database_url,
            # The single-machine deployment the SQLite target measures (refused otherwise).
            "CHATTER_ALLOW_SQLITE_IN_PRODUCTION": "true",
            "CHATTER_OPENAI_BASE_URL": f"{upstream.base_url}/v1",
            "CHATTER_OPENAI_API_KEY": "bench",
            "CHATTER_DEFAULT_PROVIDER": "openai",
            "CHATTER_DEFAULT_MODEL": MODEL,
            "CHATTER_LOG_LEVEL": "WARNING",
            # Counted (their cost is measured) but never reached by the benchmark's load.
            "CHATTER_RATE_LIMITS__REQUESTS_PER_MINUTE": "1000000",
            "CHATTER_RATE_LIMITS__TOKENS_PER_MINUTE": "1000000000",
            **({"CHATTER_REDIS_URL": redis_url} if redis_url else {}),
        },
        # The bench's own settings must not leak in (a .env is not read: cwd is a temp dir).
        drop=tuple(k for k in child_env({}) if k.startswith("CHATTER_")),
    )
    run_once(name, [str(CHATTER_BIN), "db", "upgrade"], env, cwd)
    port = free_port()
    command = [str(CHATTER_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    with started(name, command, env, cwd, port) as server:
        await server.wait_ready("/readyz")
        headers = await _api_key(server.base_url, name)
        body = {"message": PROMPT, "provider": "openai", "model": MODEL}
        base = f"{server.base_url}/api/v1"
        yield Target(
            name=name,
            server=server,
            turn=load.post_json(f"{base}/chat", body, headers),
            stream=load.post_stream(f"{base}/chat/stream", body, headers, load.chatter_token),
            events_url=f"{base}/events?type=workflow_completed",
            headers=headers,
        )


async def _api_key(base_url: str, name: str) -> dict[str, str]:
    """Register a user, log in, create an API key: the load runs as that key."""
    account = {"email": "bench@example.com", "password": secrets.token_urlsafe(16)}
    async with httpx.AsyncClient(base_url=f"{base_url}/api/v1/auth", trust_env=False) as http:
        registered = await http.post("/register", json=account)
        login = await http.post("/login", json=account)
        if registered.status_code != 201 or login.status_code != 200:
            raise BenchError(
                f"{name}: cannot register and log in: {registered.status_code} "
                f"{registered.text[:200]} / {login.status_code} {login.text[:200]}"
            )
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await http.post("/api-keys", json={"name": "bench"}, headers=bearer)
        if created.status_code != 201:
            raise BenchError(f"{name}: cannot create an API key: {created.text[:200]}")
    return {"Authorization": f"Bearer {created.json()['key']}"}

"""Fuzz the real app with schemathesis, bounded and reproducible.

Serves `create_app` under uvicorn on a free 127.0.0.1 port, on a fresh migrated SQLite
database, with a user and an admin (each with an API key made over the API); then runs the
schemathesis CLI on every operation of /openapi.json twice — as the user, then as the
admin (admin routes, `all=true` lists) — with a fixed seed and a per-operation example
limit, under a time limit for both runs together. Exits non-zero on any 5xx, any response
the OpenAPI document does not describe, or a run that overstays the limit.

    .venv/bin/python tests/fuzz/run.py [extra schemathesis options]

FUZZ_SEED and FUZZ_MAX_EXAMPLES / FUZZ_ADMIN_MAX_EXAMPLES change the seed and the limits
(e.g. for a longer local run), FUZZ_TIME_LIMIT_S the time limit for both runs (default
240 s: a guard against a hang or a slowdown; both runs take about 105 s of CPU, about two
minutes on an idle 2-core machine);
FUZZ_DATABASE_URL names an empty database to use instead (e.g. PostgreSQL; it is migrated).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import update

from chatter.app import create_app
from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.migrate import upgrade_to_head
from chatter.storage.models import User

SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
# The admin run repeats every route: fewer random examples (the coverage phase is the same).
ADMIN_MAX_EXAMPLES = int(os.environ.get("FUZZ_ADMIN_MAX_EXAMPLES", "10"))
TIME_LIMIT_S = float(os.environ.get("FUZZ_TIME_LIMIT_S", "240"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        # A method a path does not serve is a 405 whose Allow lists every method it does.
        "unsupported_method",
        "allow_header_conformance",
    )
)
PASSWORD = "a long and unusual passphrase 0123"


def fuzz_settings(database_url: str) -> Settings:
    # Only what is written here: a developer's CHATTER_* variables must not change the run.
    for name in [name for name in os.environ if name.startswith("CHATTER_")]:
        del os.environ[name]
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        database_url=database_url,
        secret_key="fuzz-secret-key-that-is-long-enough-0123456789",  # type: ignore[arg-type]
        bootstrap_admin=False,
        log_level="ERROR",
        llm={"demo_chunk_delay_s": 0.0, "max_retries": 0, "timeout_s": 10},  # type: ignore[arg-type]
        # High enough that the chat routes are fuzzed, not only refused (429 is documented).
        rate_limits={"requests_per_minute": 100_000, "register_per_ip_per_hour": 100_000},  # type: ignore[arg-type]
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def create_api_key(base_url: str, email: str) -> tuple[str, str]:
    """Register a user, log in and create an API key, as a client would: (user id, key)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        registered.raise_for_status()
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        token = login.json()["access_token"]
        created = await client.post(
            "/api/v1/auth/api-keys",
            json={"name": "fuzz"},
            headers={"Authorization": f"Bearer {token}"},
        )
        created.raise_for_status()
        return str(registered.json()["id"]), str(created.json()["key"])


async def make_admin(database_url: str, user_id: str) -> None:
    # No route makes the first admin: the operator does (`chatter users create --admin`).
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(User).where(User.id == user_id).values(role="admin"))
    finally:
        await engine.dispose()


async def run_schemathesis(
    base_url: str, api_key: str, workdir: str, extra: list[str], *, max_examples: int
) -> int:
    executable = Path(sys.executable).with_name("schemathesis")
    process = await asyncio.create_subprocess_exec(
        str(executable),
        "run",
        f"{base_url}/openapi.json",
        "--seed",
        str(SEED),
        "--max-examples",
        str(max_examples),
        "--checks",
        CHECKS,
        "--generation-database",
        "none",
        # One worker: with several, hypothesis parses lambdas' source in threads, which trips
        # CPython 3.11's "AST constructor recursion depth mismatch" now and then.
        "--workers",
        "1",
        "--no-color",
        # The live event stream never ends by design (its contract is tested in
        # tests/integration/test_events_*.py); its history twin is fuzzed.
        "--exclude-path",
        "/api/v1/events",
        "--header",
        f"Authorization: Bearer {api_key}",
        *extra,
        cwd=workdir,  # it keeps state in ./.schemathesis: not in the repository
    )
    try:
        return await process.wait()
    except asyncio.CancelledError:
        process.kill()  # over the time limit: don't leave it running
        await process.wait()
        raise


async def run_within(deadline: float, run: Coroutine[Any, Any, int]) -> int:
    try:
        return await asyncio.wait_for(run, timeout=max(deadline - time.monotonic(), 1))
    except TimeoutError:
        print(f"fuzz: over the time limit of {TIME_LIMIT_S:.0f} s", file=sys.stderr)
        return 1


async def main(extra: list[str]) -> int:
    # The fuzzer drops streams midway; asyncio's note per write to a closed socket is noise.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="chatter-fuzz-") as tmp:
        database_url = os.environ.get("FUZZ_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp}/fuzz.db"
        engine = create_engine(database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()
        async with serving(fuzz_settings(database_url)) as base_url:
            _, user_key = await create_api_key(base_url, "fuzz@example.com")
            admin_id, admin_key = await create_api_key(base_url, "boss@example.com")
            await make_admin(database_url, admin_id)
            deadline = time.monotonic() + TIME_LIMIT_S
            results = []
            for key, examples in ((user_key, MAX_EXAMPLES), (admin_key, ADMIN_MAX_EXAMPLES)):
                run = run_schemathesis(base_url, key, tmp, extra, max_examples=examples)
                results.append(await run_within(deadline, run))
            return max(results)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

"""`chatter serve --workers 2`: whichever worker answers the scrape, `/metrics` adds up the
turns every worker served (prometheus_client's multiprocess mode), and the totals equal the
usage stored in the database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
from metrics_support import parse, total, value
from processes import ROOT, Process, clean_env, free_port, wait_until_ready
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from chatter.storage.db import create_engine
from chatter.storage.models import LLMCall, WorkflowExecution
from conftest import TEST_SECRET

SCRAPE_TOKEN = "workers-scrape-token-0123456789"
BATCH = 8
MAX_TURNS = 160


def turns_by_pid(directory: Path) -> dict[str, float]:
    """Model calls each worker counted, read from its own values file."""
    served: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            if family.name == "chatter_llm_requests":
                count = sum(s.value for s in family.samples if s.name.endswith("_total"))
                served[pid] = served.get(pid, 0) + count
    return served


async def one_turn(url: str, headers: dict[str, str]) -> None:
    # A client (and so a connection) per turn, so the kernel can hand each to either worker.
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/api/v1/chat", json={"message": "Hello there"}, headers=headers
        )
        assert response.status_code == 200, response.text


async def register(url: str) -> dict[str, str]:
    credentials = {"email": "workers@example.com", "password": "correct horse battery"}
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/api/v1/auth/register", json=credentials)).status_code == 201
        login = await client.post("/api/v1/auth/login", json=credentials)
        return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def stored_totals(database_url: str) -> tuple[int, int, int, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            calls, prompt, completion = (
                await connection.execute(
                    select(
                        func.count(),
                        func.sum(LLMCall.prompt_tokens),
                        func.sum(LLMCall.completion_tokens),
                    )
                )
            ).one()
            executions = await connection.scalar(
                select(func.count()).where(WorkflowExecution.status == "completed")
            )
    finally:
        await engine.dispose()
    return int(calls), int(prompt or 0), int(completion or 0), int(executions or 0)


async def test_metrics_add_up_the_turns_of_every_worker(database_url: str, tmp_path: Path) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        CHATTER_ENV="test",
        CHATTER_DATABASE_URL=database_url,
        CHATTER_SECRET_KEY=TEST_SECRET,
        CHATTER_METRICS__SCRAPE_TOKEN=SCRAPE_TOKEN,
        CHATTER_LLM__DEMO_CHUNK_DELAY_S="0",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        # Up to 160 turns of one user within the minute: limits on, never reached.
        CHATTER_RATE_LIMITS__REQUESTS_PER_MINUTE="1000000",
    )
    if os.environ.get("CHATTER_TEST_REDIS_URL"):
        env["CHATTER_REDIS_URL"] = os.environ["CHATTER_TEST_REDIS_URL"]
        env["CHATTER_EVENTS__REDIS_STREAM"] = f"chatter:test:workers:{port}"
    chatter = str(ROOT / ".venv" / "bin" / "chatter")
    server = Process([chatter, "serve", "--workers", "2", "--port", str(port)], env)
    try:
        await wait_until_ready(url, server)
        headers = await register(url)
        turns = 0
        while turns < MAX_TURNS:
            await asyncio.gather(*(one_turn(url, headers) for _ in range(BATCH)))
            turns += BATCH
            if len([n for n in turns_by_pid(multiproc).values() if n > 0]) >= 2:
                break
        served = turns_by_pid(multiproc)
        assert len([n for n in served.values() if n > 0]) == 2, served

        calls, prompt, completion, executions = await stored_totals(database_url)
        assert calls == executions == turns
        async with httpx.AsyncClient(base_url=url) as client:
            # Several scrapes, so both workers answer some: each sees the same sums.
            for _ in range(6):
                response = await client.get(
                    "/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}
                )
                assert response.status_code == 200, response.text
                samples = parse(response.text)
                labels = {"provider": "demo", "model": "demo-1"}
                assert total(samples, "chatter_llm_requests_total") == turns
                assert value(samples, "chatter_llm_tokens_total", kind="prompt", **labels) == prompt
                assert (
                    value(samples, "chatter_llm_tokens_total", kind="completion", **labels)
                    == completion
                )
                assert (
                    value(
                        samples,
                        "chatter_workflow_executions_total",
                        workflow="chat",
                        status="completed",
                    )
                    == turns
                )
    finally:
        server.stop()

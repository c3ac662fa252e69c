"""Two workers on one database (two `chatter serve` processes on two ports, so that exactly
one can be killed): turns run through both, one is killed with SIGKILL mid-turn, and the
other recovers its executions within the lease. One SSE subscriber on the survivor sees a
terminal event for every execution exactly once, the totals are exact, and the survivor's
`/metrics` adds up both workers (they share a PROMETHEUS_MULTIPROC_DIR).

Runs on SQLite too (two processes on one WAL file; without Redis the subscriber reads the
other worker's events from the events table), and on PostgreSQL + Redis when
CHATTER_TEST_DATABASE_URL / CHATTER_TEST_REDIS_URL are set."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from accounting import TERMINAL, assert_events_recorded, assert_invariants, assert_rollups_match
from metrics_support import parse, total, value
from processes import ROOT, Process, clean_env, free_port, wait_until_ready
from sqlalchemy import select
from sse_client import SseEvent, read_events
from test_metrics_workers import register

from chatter.storage.db import create_engine
from chatter.storage.models import LLMCall, Worker, WorkflowExecution
from conftest import TEST_SECRET
from fakes.openai_server import FakeOpenAIServer, FakeReply

SCRAPE_TOKEN = "failover-scrape-token-0123456789"
HEARTBEAT_S, LEASE_S, INTERVAL_S = 0.3, 1.5, 0.3
TOOL_USAGE = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}


def answer(request: dict[str, Any]) -> FakeReply:
    """`slow` never answers in time; `slowtool` calls a tool first, then never answers;
    `medium` takes a second; anything else answers at once."""
    messages = request["messages"]
    asked = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    after_tool = messages[-1]["role"] == "tool"
    if asked == "slowtool" and not after_tool:
        calculator = {"name": "calculator", "arguments": {"expression": "6*7"}}
        return FakeReply(content="", tool_calls=[calculator], usage=TOOL_USAGE)
    if asked.startswith("slow"):
        return FakeReply(content="too late", delay_s=60)
    if asked == "medium":
        return FakeReply(content="in a while", delay_s=1.0)
    return FakeReply(content="at once")


def serve(port: int, env: dict[str, str]) -> Process:
    chatter = str(ROOT / ".venv" / "bin" / "chatter")
    return Process([chatter, "serve", "--port", str(port)], env)


async def turn(url: str, headers: dict[str, str], message: str) -> httpx.Response:
    workflow = "chat_with_tools" if message == "slowtool" else "chat"
    async with httpx.AsyncClient(base_url=url, timeout=90) as client:
        return await client.post(
            "/api/v1/chat", json={"message": message, "workflow": workflow}, headers=headers
        )


@contextlib.asynccontextmanager
async def subscriber(url: str, headers: dict[str, str]) -> AsyncIterator[list[SseEvent]]:
    """Every event the stream delivers, collected in the background while the body runs."""
    seen: list[SseEvent] = []
    subscribed = asyncio.Event()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=url, timeout=None) as client,
            client.stream("GET", "/api/v1/events", headers=headers) as response,
        ):
            assert response.status_code == 200
            async for event in read_events(response):
                if event.event == "retry":
                    subscribed.set()
                elif event.event != "comment":
                    seen.append(event)

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def rows(database_url: str) -> tuple[list[Any], list[Any], dict[int, str]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            executions = (await connection.execute(select(WorkflowExecution))).all()
            calls = (await connection.execute(select(LLMCall))).all()
            found = await connection.execute(select(Worker.pid, Worker.id))
            workers = {pid: worker_id for pid, worker_id in found}
    finally:
        await engine.dispose()
    return list(executions), list(calls), workers


async def wait_for(check: Any, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


async def test_a_killed_workers_turns_are_recovered_by_the_other(
    database_url: str, tmp_path: Path
) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    ports = free_port(), free_port()
    victim_url, survivor_url = (f"http://127.0.0.1:{port}" for port in ports)
    with FakeOpenAIServer() as fake:
        fake.set_responder(answer)
        env = clean_env(
            CHATTER_ENV="test",
            CHATTER_DATABASE_URL=database_url,
            CHATTER_SECRET_KEY=TEST_SECRET,
            CHATTER_METRICS__SCRAPE_TOKEN=SCRAPE_TOKEN,
            CHATTER_OPENAI_BASE_URL=fake.base_url,
            CHATTER_OPENAI_API_KEY="test-key",
            CHATTER_DEFAULT_PROVIDER="openai",
            CHATTER_DEFAULT_MODEL="gpt-4o-mini",
            CHATTER_LLM__MAX_RETRIES="0",
            CHATTER_LLM__TIMEOUT_S="90",
            CHATTER_EXECUTIONS__HEARTBEAT_S=str(HEARTBEAT_S),
            CHATTER_EXECUTIONS__LEASE_S=str(LEASE_S),
            CHATTER_EXECUTIONS__RECOVERY_INTERVAL_S=str(INTERVAL_S),
            # The victim's committed-but-unpublished events are relayed soon, and an idle
            # stream soon reads events its bus did not bring.
            CHATTER_EVENTS__RELAY_GRACE_S="0.5",
            CHATTER_EVENTS__RELAY_INTERVAL_S="0.3",
            CHATTER_EVENTS__HEARTBEAT_S="0.5",
            PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        )
        if os.environ.get("CHATTER_TEST_REDIS_URL"):
            env["CHATTER_REDIS_URL"] = os.environ["CHATTER_TEST_REDIS_URL"]
            env["CHATTER_EVENTS__REDIS_STREAM"] = f"chatter:test:failover:{ports[0]}"
        victim, survivor = serve(ports[0], env), serve(ports[1], env)
        try:
            await asyncio.gather(
                wait_until_ready(victim_url, victim), wait_until_ready(survivor_url, survivor)
            )
            await run_failover(database_url, victim, victim_url, survivor, survivor_url)
        finally:
            for process in (victim, survivor):
                process.stop()
            fake.set_responder(None)

    # The survivor shut down cleanly (its row gone); the victim's row went with its
    # executions' recovery: the table does not grow.
    _, _, workers = await rows(database_url)
    assert workers == {}


async def run_failover(
    database_url: str, victim: Process, victim_url: str, survivor: Process, survivor_url: str
) -> None:
    headers = await register(survivor_url)
    _, _, workers = await rows(database_url)
    victim_id, survivor_id = workers[victim.popen.pid], workers[survivor.popen.pid]
    async with subscriber(survivor_url, headers) as seen:
        quick = await asyncio.gather(
            *(turn(url, headers, "quick") for url in (victim_url, survivor_url) for _ in range(3))
        )
        assert [r.status_code for r in quick] == [200] * 6, [r.text for r in quick]

        doomed = [
            asyncio.create_task(turn(victim_url, headers, message))
            for message in ("slow", "slow", "slowtool", "slowtool")
        ]

        async def doomed_in_flight() -> bool:
            executions, calls, _ = await rows(database_url)
            mine = {e.id for e in executions if e.owner_id == victim_id and e.status == "running"}
            return len(mine) == 4 and len([c for c in calls if c.execution_id in mine]) == 2

        await wait_for(doomed_in_flight, 15, "the victim's turns in flight")
        spared = asyncio.create_task(turn(survivor_url, headers, "medium"))
        await asyncio.sleep(0.2)

        os.killpg(victim.popen.pid, signal.SIGKILL)
        victim.popen.wait(5)

        async def nothing_of_the_victim_runs() -> bool:
            executions, _, _ = await rows(database_url)
            return not [e for e in executions if e.owner_id == victim_id and e.status == "running"]

        took = await wait_for(nothing_of_the_victim_runs, 10, "the victim's executions recovered")
        assert took < LEASE_S + 2 * INTERVAL_S + 1.5, took
        for task in doomed:
            with contextlib.suppress(httpx.TransportError):
                await task
                raise AssertionError("a turn of the killed worker answered")
        assert (await spared).status_code == 200

        executions, calls, _ = await rows(database_url)
        assert len(executions) == 11
        recovered = [e for e in executions if e.owner_id == victim_id and e.status == "failed"]
        assert len(recovered) == 4
        assert all("interrupted" in (e.error or "") for e in recovered)
        assert sorted(e.total_tokens for e in recovered) == [0, 0, 60, 60]
        assert {e.status for e in executions if e.owner_id == survivor_id} == {"completed"}

        async def every_terminal_seen() -> bool:
            terminal = {e.data["execution_id"] for e in seen if e.event in TERMINAL.values()}
            return terminal >= {e.id for e in executions}

        await wait_for(every_terminal_seen, 10, "a terminal event for every execution")
        await asyncio.sleep(1.0)  # a duplicate would arrive meanwhile
        ids = [e.id for e in seen]
        assert len(ids) == len(set(ids)), "an event was delivered twice"
        terminal = sorted(e.data["execution_id"] for e in seen if e.event in TERMINAL.values())
        assert terminal == sorted(e.id for e in executions)

    await check_accounting(database_url)
    await check_metrics(survivor_url, calls, executions)


async def check_accounting(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await assert_invariants(engine)
        await assert_events_recorded(engine)
        await assert_rollups_match(engine)
    finally:
        await engine.dispose()


async def check_metrics(url: str, calls: list[Any], executions: list[Any]) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert response.status_code == 200, response.text
    samples = parse(response.text)
    # Both workers' values: the killed one's stay in its files.
    assert total(samples, "chatter_llm_requests_total") == len(calls)
    prompt = sum(call.prompt_tokens for call in calls)
    labels = {"provider": "openai", "model": "gpt-4o-mini", "kind": "prompt"}
    assert value(samples, "chatter_llm_tokens_total", **labels) == prompt
    assert total(samples, "chatter_workflow_executions_total") == len(executions)
    assert total(samples, "chatter_executions_recovered_total") == 4

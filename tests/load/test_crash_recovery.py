"""Crash test: `kill -9` a `chatter serve` in the middle of a faulty load, start it again on
the same database, and the accounting holds: the turns it was running are recovered as
failed (interrupted) with their recorded usage applied once, the outbox is drained, and every
execution has exactly one terminal event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fault_injection import FaultRates, faulty_responder
from load_checks import (
    assert_database_invariants,
    check_turn,
    statuses_by_turn,
    wait_until_settled,
)
from load_driver import LoadPlan, Seen, register_users, run_load, summary
from server_process import ChatterServer, server_env
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.services.recovery import REASON
from chatter.storage.models import Message, WorkflowExecution
from fakes.openai_server import FakeOpenAIServer

SEED = 23
RATES = FaultRates(http_500=0.10, timeout=0.05, cut=0.05)
LLM_TIMEOUT_S = 1.0
TURNS, CONCURRENCY = 300, 16
KILL_AFTER_CLOSED = 60  # executions finished before the kill
AFTER_RESTART = 40  # turns served by the restarted server
# Today's startup recovery closes every running execution; lease-based recovery (coming)
# waits for the dead owner's lease: short ones here, and the test waits either way.
RESTART_ENV = {
    "CHATTER_EXECUTIONS__HEARTBEAT_S": "0.2",
    "CHATTER_EXECUTIONS__LEASE_S": "1.0",
    "CHATTER_EXECUTIONS__RECOVERY_INTERVAL_S": "0.2",
    "CHATTER_EVENTS__RELAY_GRACE_S": "0.5",
    "CHATTER_EVENTS__RELAY_INTERVAL_S": "0.2",
}


@pytest.fixture(scope="module")
def slow_faulty_model() -> Iterator[FakeOpenAIServer]:
    """Replies take a few hundred ms to stream, so the kill finds turns in flight."""
    with FakeOpenAIServer() as server:
        server.set_responder(
            faulty_responder(SEED, RATES, timeout_delay_s=LLM_TIMEOUT_S * 3, chunk_delay_s=0.03)
        )
        yield server


async def count(engine: AsyncEngine, *where: object) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            select(func.count(WorkflowExecution.id)).where(*where)  # type: ignore[arg-type]
        )
    return int(found or 0)


async def wait_for_closed(engine: AsyncEngine, closed: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while await count(engine, WorkflowExecution.status != "running") < closed:
        assert time.monotonic() < deadline, "the load did not get going"
        await asyncio.sleep(0.05)


def check_cut_turn(seen: Seen, statuses: list[str]) -> str | None:
    """A turn whose client lost the server: at most one execution, and it is closed."""
    if len(statuses) > 1 or any(s not in ("completed", "failed", "cancelled") for s in statuses):
        return f"{seen.kind} {seen.outcome}: executions {statuses}"
    return None


async def test_a_killed_server_recovers_on_restart(
    database_url: str, slow_faulty_model: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    env = server_env(
        database_url,
        slow_faulty_model.base_url,
        CHATTER_LLM__TIMEOUT_S=str(LLM_TIMEOUT_S),
        CHATTER_LLM__MAX_RETRIES="0",
        CHATTER_LLM__SSE_PING_S="1",
    )
    first = ChatterServer(env)
    restarted = ChatterServer({**env, **RESTART_ENV})
    try:
        await first.start()
        target = await register_users(first.url, count=4, conversations_each=3)
        plan = LoadPlan(turns=TURNS, concurrency=CONCURRENCY, seed=SEED)
        started = time.monotonic()
        load = asyncio.create_task(run_load(target, plan, timeout_s=15))
        await wait_for_closed(engine, KILL_AFTER_CLOSED)
        first.kill()
        plan.stop.set()
        before = await load
        print(summary(before, time.monotonic() - started))
        orphans = await orphaned(engine)
        assert orphans, "the kill found no turn in flight"

        await restarted.start()
        await wait_until_settled(engine, timeout_s=20)
        await assert_recovered(engine, orphans)
        target.url = restarted.url
        after = await run_load(
            target, LoadPlan(AFTER_RESTART, CONCURRENCY, SEED, start_turn=TURNS), timeout_s=15
        )
        await wait_until_settled(engine, timeout_s=20)
    finally:
        first.stop()
        restarted.stop()
    print(summary(after, time.monotonic() - started), f"orphans: {len(orphans)}")
    statuses = await statuses_by_turn(engine)
    problems = {}
    cut_off = {seen.turn for seen in before if seen.outcome not in ("done", "error", "left")}
    for seen in before + after:
        mine = statuses.get(seen.turn, [])
        if seen.turn in cut_off:
            problem = check_cut_turn(seen, mine)
        else:
            problem = check_turn(seen, mine, SEED, RATES)
        if problem is not None:
            problems[seen.turn] = problem
    assert not problems, f"{len(problems)} turns wrong, e.g. {list(problems.items())[:10]}"
    await assert_database_invariants(engine)


async def orphaned(engine: AsyncEngine) -> set[str]:
    """Executions the dead server left running."""
    async with engine.connect() as connection:
        rows = await connection.scalars(
            select(WorkflowExecution.id).where(WorkflowExecution.status == "running")
        )
        return set(rows)


async def assert_recovered(engine: AsyncEngine, orphans: set[str]) -> None:
    """Each orphan closed as failed, interrupted, with one error message for its turn."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    WorkflowExecution.id, WorkflowExecution.status, WorkflowExecution.error
                ).where(WorkflowExecution.id.in_(orphans))
            )
        ).all()
        messages = (
            await connection.execute(
                select(Message.workflow_execution_id, Message.status).where(
                    Message.workflow_execution_id.in_(orphans), Message.role == "assistant"
                )
            )
        ).all()
    assert {(row.id, row.status, row.error) for row in rows} == {
        (orphan, "failed", REASON) for orphan in orphans
    }
    assert sorted(messages) == sorted((orphan, "error") for orphan in orphans)

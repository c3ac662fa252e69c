"""What must hold after a load: per turn (its execution's status against the fault its model
calls met and what its client saw) and over the whole database (the accounting invariants)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from fault_injection import Fault, FaultRates, turn_faults
from load_driver import TOOL_KINDS, Kind, Seen
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.storage.models import Event, Message, WorkflowExecution
from integration.accounting import (
    assert_assistant_usage,
    assert_invariants,
    assert_outbox_drained,
)

TERMINAL = {"completed", "failed", "cancelled"}
LEAVING = {Kind.LEAVE_STREAM, Kind.LEAVE_PLAIN}


async def wait_until(engine: AsyncEngine, what: str, query: object, timeout_s: float) -> None:
    """Poll `query` (a scalar count) until it is 0."""
    deadline = time.monotonic() + timeout_s
    left = None
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            left = await connection.scalar(query)  # type: ignore[call-overload]
        if not left:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{left} {what} after {timeout_s}s")


async def wait_until_settled(engine: AsyncEngine, timeout_s: float = 30) -> None:
    """Nothing running, and every event published (the relay catches up on the rest)."""
    running = select(func.count(WorkflowExecution.id)).where(WorkflowExecution.status == "running")
    await wait_until(engine, "executions still running", running, timeout_s)
    unpublished = select(func.count(Event.id)).where(Event.published_at.is_(None))
    await wait_until(engine, "events not published", unpublished, timeout_s)


async def statuses_by_turn(engine: AsyncEngine) -> dict[int, list[str]]:
    """Each turn's executions' statuses; a turn that wrote a message but no execution shows
    up as a status "no execution"."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(WorkflowExecution.correlation_id, WorkflowExecution.status).where(
                    WorkflowExecution.correlation_id.like("load-%")
                )
            )
        ).all()
        with_messages = set(
            await connection.scalars(
                select(Message.correlation_id).where(Message.correlation_id.like("load-%"))
            )
        )
    found: dict[int, list[str]] = {}
    for correlation_id, status in rows:
        found.setdefault(_turn(correlation_id), []).append(status)
    for correlation_id in with_messages:
        found.setdefault(_turn(correlation_id), ["no execution"])
    return found


def _turn(correlation_id: str) -> int:
    return int(correlation_id.removeprefix("load-"))


def expected(seen: Seen, seed: int, rates: FaultRates) -> tuple[str, Fault]:
    """The status a turn whose client stayed must end with, and the fault that decided it."""
    calls = 2 if seen.kind in TOOL_KINDS else 1
    faults = turn_faults(seed, seen.turn, calls, rates)
    fault = faults[-1]
    return ("completed" if fault is Fault.NONE else "failed"), fault


def check_turn(seen: Seen, statuses: list[str], seed: int, rates: FaultRates) -> str | None:
    """A description of what is wrong with this turn, or None."""
    if seen.status is not None and seen.status >= 500 and seen.status != 502:
        return f"HTTP {seen.status}: {seen.body[:300]}"
    if seen.status is not None and seen.status not in (200, 502):
        return f"HTTP {seen.status}: {seen.body[:300]}"
    if seen.error_code not in (None, "provider_error"):
        return f"error code {seen.error_code}: {seen.body[:300]}"
    if not statuses and seen.outcome == "left" and seen.kind is Kind.LEAVE_PLAIN:
        return None  # the client left before the turn opened: it wrote nothing
    if len(statuses) != 1:
        return f"{len(statuses)} executions: {statuses}"
    (status,) = statuses
    if status not in TERMINAL:
        return f"execution {status}"
    if seen.outcome == "left":
        # The stream was cancelled (or it had just finished either way); a plain turn runs on.
        return None if seen.kind in LEAVING else f"left but kind {seen.kind}"
    want, fault = expected(seen, seed, rates)
    client = "done" if want == "completed" else "error"
    if (status, seen.outcome) != (want, client):
        return f"{fault}: execution {status}, client {seen.outcome} (want {want}, {client})"
    if seen.status == 502 and seen.error_code != "provider_error":
        return f"502 without provider_error: {seen.body[:300]}"
    return None


async def assert_load_outcome(
    engine: AsyncEngine, results: list[Seen], seed: int, rates: FaultRates
) -> Counter[str]:
    """Every turn ended as its faults say; then the database-wide invariants. Returns the
    executions by status."""
    statuses = await statuses_by_turn(engine)
    problems = {
        seen.turn: f"{seen.kind} {seen.status} {seen.outcome}: {problem}"
        for seen in results
        if (problem := check_turn(seen, statuses.get(seen.turn, []), seed, rates)) is not None
    }
    assert not problems, f"{len(problems)} turns wrong, e.g. {list(problems.items())[:10]}"
    await assert_database_invariants(engine)
    return Counter(status for found in statuses.values() for status in found)


async def assert_database_invariants(engine: AsyncEngine) -> None:
    await assert_invariants(engine)  # also: terminal events once each, rollups = sums
    await assert_assistant_usage(engine)
    await assert_outbox_drained(engine)

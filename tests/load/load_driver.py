"""Drives mixed chat turns at a bounded concurrency over real HTTP and records what each
client saw: plain and streamed turns, tool turns, and clients that leave mid-turn.

Every turn sends `X-Correlation-ID: load-<n>` and `[turn n]` in its message, so the test can
find its execution and the fault its model calls met.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from fault_injection import SLOW_MARK

from integration.sse_client import read_events


class Kind(StrEnum):
    PLAIN = "plain"
    STREAMED = "streamed"
    TOOL_PLAIN = "tool_plain"
    TOOL_STREAMED = "tool_streamed"
    LEAVE_STREAM = "leave_stream"  # the client closes the stream after a few events
    LEAVE_PLAIN = "leave_plain"  # the client gives up waiting (a client-side timeout)


MIX: tuple[tuple[Kind, int], ...] = (
    (Kind.PLAIN, 30),
    (Kind.STREAMED, 25),
    (Kind.TOOL_PLAIN, 10),
    (Kind.TOOL_STREAMED, 10),
    (Kind.LEAVE_STREAM, 15),
    (Kind.LEAVE_PLAIN, 10),
)
TOOL_KINDS = {Kind.TOOL_PLAIN, Kind.TOOL_STREAMED}


@dataclass
class Seen:
    """What the client of one turn saw."""

    turn: int
    kind: Kind
    status: int | None = None  # HTTP status; None when the client left or could not connect
    outcome: str = ""  # done / error / left / transport error name
    error_code: str | None = None
    body: str = ""


@dataclass
class LoadPlan:
    turns: int
    concurrency: int
    seed: int = 11
    start_turn: int = 0  # turn numbers continue across phases
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # no new turns once set


@dataclass
class Target:
    url: str
    users: list[dict[str, str]]  # auth headers
    conversations: list[list[str]]  # per user


def kind_of(seed: int, turn: int) -> Kind:
    rng = random.Random(f"kind:{seed}:{turn}")
    kinds = [kind for kind, _ in MIX]
    return rng.choices(kinds, weights=[weight for _, weight in MIX])[0]


def _body(target: Target, plan: LoadPlan, turn: int, kind: Kind) -> tuple[int, dict[str, Any]]:
    rng = random.Random(f"body:{plan.seed}:{turn}")
    user = rng.randrange(len(target.users))
    slow = f" {SLOW_MARK}" if kind in (Kind.LEAVE_STREAM, Kind.LEAVE_PLAIN) else ""
    body: dict[str, Any] = {"message": f"[turn {turn}] what is 6*7?{slow}"}
    if rng.random() < 0.7:  # most turns go into a shared conversation, often concurrently
        body["conversation_id"] = rng.choice(target.conversations[user])
    if kind in TOOL_KINDS:
        body["workflow"] = "chat_with_tools"
    return user, body


async def _stream(
    client: httpx.AsyncClient, seen: Seen, body: dict[str, Any], headers: dict[str, str]
) -> None:
    leave_after = 1 + seen.turn % 6 if seen.kind is Kind.LEAVE_STREAM else None
    async with client.stream("POST", "/api/v1/chat/stream", json=body, headers=headers) as resp:
        seen.status = resp.status_code
        if resp.status_code != 200:
            seen.body = (await resp.aread()).decode(errors="replace")
            return
        events = 0
        async for event in read_events(resp):
            if event.event in ("comment", "retry"):
                continue
            events += 1
            if event.event in ("done", "error"):
                seen.outcome = event.event
                seen.error_code = event.data.get("code") if event.event == "error" else None
                return
            if leave_after is not None and events >= leave_after:
                seen.outcome = "left"
                return  # closing the response drops the connection mid-stream
        seen.outcome = "ended_without_done"


async def _plain(
    client: httpx.AsyncClient, seen: Seen, body: dict[str, Any], headers: dict[str, str]
) -> None:
    timeout = None
    if seen.kind is Kind.LEAVE_PLAIN:
        timeout = 0.05 + (seen.turn % 7) * 0.05
    try:
        resp = await client.post("/api/v1/chat", json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        if timeout is None:
            raise
        seen.outcome = "left"
        return
    seen.status = resp.status_code
    seen.body = resp.text
    if resp.status_code == 200:
        seen.outcome = "done"
    else:
        seen.outcome = "error"
        error = (
            resp.json().get("error", {})
            if resp.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        seen.error_code = error.get("code")


async def one_turn(client: httpx.AsyncClient, target: Target, plan: LoadPlan, turn: int) -> Seen:
    kind = kind_of(plan.seed, turn)
    seen = Seen(turn, kind)
    user, body = _body(target, plan, turn, kind)
    headers = {**target.users[user], "X-Correlation-ID": f"load-{turn}"}
    try:
        if kind in (Kind.STREAMED, Kind.TOOL_STREAMED, Kind.LEAVE_STREAM):
            await _stream(client, seen, body, headers)
        else:
            await _plain(client, seen, body, headers)
    except httpx.TransportError as exc:
        seen.outcome = type(exc).__name__
    return seen


async def run_load(target: Target, plan: LoadPlan, *, timeout_s: float = 60) -> list[Seen]:
    """Runs turns start_turn .. start_turn + turns - 1 with `concurrency` clients at a time;
    stops issuing new ones when `plan.stop` is set."""
    results: list[Seen] = []
    pending = iter(range(plan.start_turn, plan.start_turn + plan.turns))
    limits = httpx.Limits(max_connections=plan.concurrency * 2)
    async with httpx.AsyncClient(base_url=target.url, timeout=timeout_s, limits=limits) as client:

        async def worker() -> None:
            for turn in pending:
                if plan.stop.is_set():
                    return
                results.append(await one_turn(client, target, plan, turn))

        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return results


def summary(results: list[Seen], elapsed_s: float) -> str:
    kinds = Counter(seen.kind.value for seen in results)
    outcomes = Counter(f"{seen.status}:{seen.outcome}:{seen.error_code}" for seen in results)
    rate = len(results) / elapsed_s if elapsed_s else 0.0
    head = f"{len(results)} turns in {elapsed_s:.1f}s ({rate:.0f}/s)"
    return f"{head}; {dict(kinds)}; {dict(outcomes)}"


async def register_users(url: str, count: int, conversations_each: int) -> Target:
    users: list[dict[str, str]] = []
    conversations: list[list[str]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for n in range(count):
            credentials = {
                "email": f"load-{n}-{time.monotonic_ns()}@example.com",
                "password": "correct horse battery",
            }
            registered = await client.post("/api/v1/auth/register", json=credentials)
            assert registered.status_code == 201, registered.text
            login = await client.post("/api/v1/auth/login", json=credentials)
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            mine = []
            for _ in range(conversations_each):
                created = await client.post("/api/v1/conversations", json={}, headers=headers)
                assert created.status_code == 201, created.text
                mine.append(created.json()["id"])
            users.append(headers)
            conversations.append(mine)
    return Target(url, users, conversations)

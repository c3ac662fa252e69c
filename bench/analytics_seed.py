"""Seeding the analytics benchmark: LLM calls spread over the last 30 days, written straight
into the tables with Core multi-row inserts, one transaction per batch. Their rollups are
built by the product's own code (`Deltas.add_execution`, then `write_deltas`: the upserts
every close runs), less the minute buckets the retention loop would have removed, so the
rollup tables hold exactly what live closes would have left.

Not seeded: messages and events (analytics never read them); conversations keep zero
totals."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.enums import ExecutionStatus, LLMCallStatus, UsageSource, UserRole
from chatter.services.credentials import PasswordHasher
from chatter.settings import AnalyticsSettings
from chatter.storage import rollups
from chatter.storage.db import create_session_factory
from chatter.storage.models import Conversation, LLMCall, ToolInvocation, User, WorkflowExecution
from chatter.storage.rollup_tables import usage_rollups

DAYS = 30
USERS = 50
CONVERSATIONS_PER_USER = 4
CALLS_PER_EXECUTION = 2
EXECUTIONS_PER_BATCH = 5000  # one transaction: 5,000 executions, 10,000 calls, their rollups
PASSWORD = "benchmark password"
ADMIN_EMAIL = "bench-admin@bench.local"
USER_EMAIL = "bench-user-00@bench.local"  # the normal user measured: 1/50 of the data
MONEY = Decimal("1e-10")
MILLION = Decimal(1_000_000)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
FAILURE = "provider_error: upstream answered 500"


@dataclass(frozen=True)
class PricedModel:
    provider: str
    model: str
    weight: int  # share of the executions
    per_mtok: tuple[Decimal, Decimal, Decimal] | None  # input, cached input, output; None: unknown


MODELS = (
    PricedModel("openai", "gpt-4o-mini", 45, (Decimal("0.15"), Decimal("0.075"), Decimal("0.6"))),
    PricedModel("openai", "gpt-4o", 15, (Decimal("2.5"), Decimal("1.25"), Decimal("10"))),
    PricedModel(
        "anthropic", "claude-3-5-haiku-latest", 30, (Decimal("0.8"), Decimal("0.08"), Decimal("4"))
    ),
    PricedModel("ollama", "llama3.1:8b", 10, None),  # a local server nobody priced
)
WORKFLOWS = ("chat", "chat_with_tools")


@dataclass(frozen=True)
class Seeded:
    executions: int
    calls: int
    tool_calls: int
    rollup_rows: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.executions + self.calls + self.tool_calls


@dataclass
class _Batch:
    executions: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    deltas: rollups.Deltas = field(default_factory=rollups.Deltas)


def _ids(moment: datetime, tag: str, serial: int) -> str:
    """A ULID-shaped id, cheap: the creation time's 10 characters, then a run tag and a
    serial number instead of randomness (still sortable by creation, still unique)."""
    ms = int(moment.timestamp() * 1000)
    stamp = "".join(_CROCKFORD[(ms >> shift) & 31] for shift in range(45, -1, -5))
    return f"{stamp}{tag}{serial:010d}"


def _execution_row(
    facts: rollups.ExecutionFacts,
    started_at: datetime,
    correlation_id: str,
    calls: list[rollups.CallFacts],
) -> dict[str, Any]:
    """The execution as its close leaves it: totals summed over its calls."""
    return {
        "id": facts.execution_id,
        "user_id": facts.user_id,
        "conversation_id": facts.conversation_id,
        "workflow_name": facts.workflow,
        "provider": facts.provider,
        "model": facts.model,
        "status": facts.status,
        "started_at": started_at,
        "finished_at": facts.finished_at,
        "duration_ms": int((facts.finished_at - started_at).total_seconds() * 1000),
        "llm_call_count": len(calls),
        "prompt_tokens": sum(call.prompt_tokens for call in calls),
        "completion_tokens": sum(call.completion_tokens for call in calls),
        "total_tokens": sum(call.prompt_tokens + call.completion_tokens for call in calls),
        "cached_tokens": sum(call.cached_tokens for call in calls),
        "reasoning_tokens": sum(call.reasoning_tokens for call in calls),
        "total_cost": sum((call.cost for call in calls if call.cost_known), Decimal(0)),
        "error": FAILURE if facts.status == ExecutionStatus.FAILED.value else None,
        "correlation_id": correlation_id,
    }


class _Generator:
    """Executions in the order they finished, each with two model calls (a tool between
    them in `chat_with_tools`), some failed, cancelled, estimated or priced unknown."""

    def __init__(self, now: datetime, executions: int, conversations: dict[str, list[str]]):
        self._rng = random.Random(executions)  # noqa: S311 - test data, not secrets
        self._start = now - timedelta(days=DAYS)
        self._step = timedelta(days=DAYS) / executions
        self._conversations = conversations
        self._users = sorted(conversations)
        self._tag = "".join(self._rng.choice(_CROCKFORD) for _ in range(6))
        self._serial = 0
        retention = timedelta(hours=AnalyticsSettings().minute_retention_hours)
        # What AnalyticsService.minutes_from() answers: older minute buckets are cleaned up.
        self.minutes_from = rollups.bucket_start(now - retention, "hour") + timedelta(hours=1)

    def batch(self, first: int, count: int) -> _Batch:
        batch = _Batch()
        for index in range(first, first + count):
            self._execution(batch, index)
        for key in [k for k in batch.deltas.rollups if k[0] == "minute"]:
            if key[1] < self.minutes_from:
                del batch.deltas.rollups[key]
        return batch

    def _id(self, moment: datetime) -> str:
        self._serial += 1
        return _ids(moment, self._tag, self._serial)

    def _execution(self, batch: _Batch, index: int) -> None:
        rng = self._rng
        finished_at = self._start + self._step * (index + rng.random())
        user_id = self._users[index % len(self._users)]
        priced = rng.choices(MODELS, weights=[m.weight for m in MODELS])[0]
        workflow = WORKFLOWS[rng.random() < 0.3]
        roll = rng.random()
        status = (
            ExecutionStatus.FAILED
            if roll < 0.01
            else ExecutionStatus.CANCELLED
            if roll < 0.015
            else ExecutionStatus.COMPLETED
        )
        calls = self._calls(priced, status)
        latency = sum(call.latency_ms for call in calls)
        tool_ms = 30 if workflow == "chat_with_tools" else 0
        started_at = finished_at - timedelta(milliseconds=latency + tool_ms + 15)
        execution_id = self._id(started_at)
        correlation_id = self._id(started_at)
        conversation_id = rng.choice(self._conversations[user_id])
        facts = rollups.ExecutionFacts(
            execution_id=execution_id,
            user_id=user_id,
            conversation_id=conversation_id,
            workflow=workflow,
            status=status.value,
            finished_at=finished_at,
            provider=priced.provider,
            model=priced.model,
            tool_calls=int(workflow == "chat_with_tools"),
        )
        batch.deltas.add_execution(facts, calls)
        batch.executions.append(_execution_row(facts, started_at, correlation_id, calls))
        moment = started_at
        for number, call in enumerate(calls):
            moment += timedelta(milliseconds=call.latency_ms)
            batch.calls.append(self._call_row(call, execution_id, correlation_id, moment))
            if number == 0 and tool_ms:
                moment += timedelta(milliseconds=tool_ms)
                batch.tools.append(self._tool_row(execution_id, correlation_id, moment))

    def _calls(self, priced: PricedModel, status: ExecutionStatus) -> list[rollups.CallFacts]:
        rng = self._rng
        prompt = rng.randint(150, 4000)
        calls = []
        for number in range(CALLS_PER_EXECUTION):
            last = number == CALLS_PER_EXECUTION - 1
            call_status = LLMCallStatus.SUCCEEDED
            if last and status is ExecutionStatus.FAILED:
                call_status = LLMCallStatus.FAILED
            elif last and status is ExecutionStatus.CANCELLED:
                call_status = LLMCallStatus.PARTIAL
            completion = 0 if call_status is LLMCallStatus.FAILED else rng.randint(20, 900)
            calls.append(self._call(priced, prompt, completion, call_status))
            prompt += completion + rng.randint(20, 200)  # the next call reads the answer too
        return calls

    def _call(
        self, priced: PricedModel, prompt: int, completion: int, status: LLMCallStatus
    ) -> rollups.CallFacts:
        rng = self._rng
        cached = prompt // 2 if priced.provider != "ollama" and rng.random() < 0.3 else 0
        reasoning = rng.randint(64, 512) if priced.model == "gpt-4o" and rng.random() < 0.2 else 0
        estimated = status is not LLMCallStatus.SUCCEEDED or rng.random() < 0.01
        cost = Decimal(0)
        if priced.per_mtok is not None:
            rate_in, rate_cached, rate_out = priced.per_mtok
            units = (prompt - cached) * rate_in + cached * rate_cached + completion * rate_out
            cost = (units / MILLION).quantize(MONEY)
        latency = max(50, int(rng.lognormvariate(6.8, 0.6)))
        return rollups.CallFacts(
            provider=priced.provider,
            model=priced.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            cost=cost,
            cost_known=priced.per_mtok is not None,
            currency=rollups.DEFAULT_CURRENCY,
            usage_source=(UsageSource.ESTIMATED if estimated else UsageSource.PROVIDER).value,
            latency_ms=latency,
            time_to_first_token_ms=None if completion == 0 else latency // 5,
            status=status.value,
        )

    def _call_row(
        self, call: rollups.CallFacts, execution_id: str, correlation_id: str, moment: datetime
    ) -> dict[str, Any]:
        failed = call.status == LLMCallStatus.FAILED.value
        return {
            "id": self._id(moment),
            "execution_id": execution_id,
            "node": "model",
            "provider": call.provider,
            "model": call.model,
            "prompt_tokens": call.prompt_tokens,
            "completion_tokens": call.completion_tokens,
            "total_tokens": call.prompt_tokens + call.completion_tokens,
            "cached_tokens": call.cached_tokens,
            "reasoning_tokens": call.reasoning_tokens,
            "cost": call.cost,
            "cost_known": call.cost_known,
            "price_source": "genai-prices" if call.cost_known else "unknown",
            "currency": call.currency,
            "usage_source": call.usage_source,
            "latency_ms": call.latency_ms,
            "time_to_first_token_ms": call.time_to_first_token_ms,
            "finish_reason": None if call.status != LLMCallStatus.SUCCEEDED.value else "stop",
            "status": call.status,
            "error": FAILURE if failed else None,
            "correlation_id": correlation_id,
            "created_at": moment,
        }

    def _tool_row(self, execution_id: str, correlation_id: str, moment: datetime) -> dict[str, Any]:
        return {
            "id": self._id(moment),
            "execution_id": execution_id,
            "node": "tools",
            "tool_call_id": f"call_{self._serial}",
            "name": "calculator",
            "arguments": {"expression": "6*7"},
            "result": "42",
            "status": "succeeded",
            "latency_ms": 30,
            "correlation_id": correlation_id,
            "created_at": moment,
        }


async def _people(engine: AsyncEngine, now: datetime) -> dict[str, list[str]]:
    """The admin (no usage of its own), USERS users and their conversations; returns each
    user's conversation ids."""
    password_hash = await PasswordHasher().hash(PASSWORD)
    users = [
        {"id": _ids(now, "000001", i), "email": f"bench-user-{i:02d}@bench.local", "role": "user"}
        for i in range(USERS)
    ]
    admin = {"id": _ids(now, "000002", 0), "email": ADMIN_EMAIL, "role": UserRole.ADMIN.value}
    conversations: dict[str, list[str]] = {}
    rows = []
    for number, user in enumerate(users):
        ids = [_ids(now, "000003", number * 100 + i) for i in range(CONVERSATIONS_PER_USER)]
        conversations[user["id"]] = ids
        rows += [
            {"id": id_, "user_id": user["id"], "title": f"Conversation {i + 1}", "updated_at": now}
            for i, id_ in enumerate(ids)
        ]
    async with engine.begin() as connection:
        await connection.execute(
            insert(User.__table__),
            [{**user, "password_hash": password_hash} for user in [admin, *users]],
        )
        await connection.execute(insert(Conversation.__table__), rows)
    return conversations


async def seed(
    engine: AsyncEngine, calls: int, now: datetime, progress: Any | None = None
) -> Seeded:
    """`calls` LLM calls (CALLS_PER_EXECUTION per execution) finished over the DAYS before
    `now`, their executions, tool calls and rollups."""
    started = time.perf_counter()
    executions = max(1, calls // CALLS_PER_EXECUTION)
    generator = _Generator(now, executions, await _people(engine, now))
    sessions = create_session_factory(engine)
    written = [0, 0, 0]
    starts = list(range(0, executions, EXECUTIONS_PER_BATCH))

    def generate(first: int) -> _Batch:
        return generator.batch(first, min(EXECUTIONS_PER_BATCH, executions - first))

    # The next batch is generated in a thread while this one is written (the database's
    # work runs outside the GIL): generation and writing overlap.
    upcoming = asyncio.ensure_future(asyncio.to_thread(generate, starts[0]))
    for index in range(len(starts)):
        batch = await upcoming
        if index + 1 < len(starts):
            upcoming = asyncio.ensure_future(asyncio.to_thread(generate, starts[index + 1]))
        async with sessions() as session:
            await session.execute(insert(WorkflowExecution.__table__), batch.executions)
            if batch.tools:
                await session.execute(insert(ToolInvocation.__table__), batch.tools)
            await session.execute(insert(LLMCall.__table__), batch.calls)
            await rollups.write_deltas(session, batch.deltas)
            await session.commit()
        for position, rows in enumerate((batch.executions, batch.calls, batch.tools)):
            written[position] += len(rows)
        if progress is not None:
            progress(written[1], executions * CALLS_PER_EXECUTION)
    async with engine.connect() as connection:
        rollup_rows = await connection.scalar(select(func.count()).select_from(usage_rollups))
    return Seeded(
        executions=written[0],
        calls=written[1],
        tool_calls=written[2],
        rollup_rows=int(rollup_rows or 0),
        seconds=time.perf_counter() - started,
    )

"""Helpers for the monitoring tests: wait for the live view, read the records with SQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.container import Container
from chatter.domain.monitoring import WorkflowMetrics
from chatter.storage.models import LLMCall, ToolInvocation, WorkflowExecution
from conftest import Actor
from fakes.openai_server import FakeOpenAIServer, FakeReply

FIRST = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
SECOND = {
    "prompt_tokens": 80,
    "completion_tokens": 20,
    "total_tokens": 100,
    "prompt_tokens_details": {"cached_tokens": 40},
}


def container_of(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


async def tool_turn(
    client: httpx.AsyncClient, user: Actor, fake: FakeOpenAIServer, correlation_id: str
) -> httpx.Response:
    """A chat_with_tools turn: a model call asking for the calculator, the tool, an answer."""
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage=FIRST,
        ),
        FakeReply(content="6*7 is 42.", usage=SECOND),
    )
    response = await client.post(
        "/api/v1/chat",
        json={"message": "What is 6*7?", "workflow": "chat_with_tools"},
        headers={**user.headers, "X-Correlation-ID": correlation_id},
    )
    assert response.status_code == 200, response.text
    return response


async def finished_metrics(
    container: Container, execution_id: str, within: float = 10.0
) -> WorkflowMetrics:
    """The live view's metrics once its closing event arrived (delivery is asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        metrics = container.monitoring.tracker.get(execution_id)
        if metrics is not None and metrics.finished:
            return metrics
        assert time.monotonic() < deadline, f"execution {execution_id} never finished in view"
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Recorded:
    """An execution's figures as the database has them."""

    status: str
    llm_call_count: int
    tool_call_count: int
    tokens: tuple[int, int, int, int, int]
    cost: Decimal
    call_tokens: tuple[int, int, int, int, int]
    call_cost: Decimal


async def recorded(engine: AsyncEngine, execution_id: str) -> Recorded:
    async with engine.connect() as connection:
        execution = (
            await connection.execute(
                select(WorkflowExecution).where(WorkflowExecution.id == execution_id)
            )
        ).one()
        calls = (
            await connection.execute(
                select(
                    func.count(LLMCall.id),
                    func.sum(LLMCall.prompt_tokens),
                    func.sum(LLMCall.completion_tokens),
                    func.sum(LLMCall.total_tokens),
                    func.sum(LLMCall.cached_tokens),
                    func.sum(LLMCall.reasoning_tokens),
                    func.sum(LLMCall.cost),
                ).where(LLMCall.execution_id == execution_id)
            )
        ).one()
        tools = await connection.scalar(
            select(func.count(ToolInvocation.id)).where(ToolInvocation.execution_id == execution_id)
        )
    _count, *call_tokens, call_cost = calls
    return Recorded(
        status=execution.status,
        llm_call_count=execution.llm_call_count,
        tool_call_count=int(tools or 0),
        tokens=(
            execution.prompt_tokens,
            execution.completion_tokens,
            execution.total_tokens,
            execution.cached_tokens,
            execution.reasoning_tokens,
        ),
        cost=execution.total_cost,
        call_tokens=tuple(int(t or 0) for t in call_tokens),  # type: ignore[arg-type]
        call_cost=call_cost or Decimal(0),
    )


def figures(metrics: WorkflowMetrics) -> tuple[object, ...]:
    return (
        metrics.status,
        metrics.llm_call_count,
        metrics.tool_call_count,
        (
            metrics.prompt_tokens,
            metrics.completion_tokens,
            metrics.total_tokens,
            metrics.cached_tokens,
            metrics.reasoning_tokens,
        ),
        metrics.cost,
    )


def figures_of(row: Recorded) -> tuple[object, ...]:
    return (row.status, row.llm_call_count, row.tool_call_count, row.tokens, row.cost)

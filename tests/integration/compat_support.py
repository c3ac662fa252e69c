"""Shared by the compatible-endpoint tests: settings with both fake upstreams, an API key
per user, and the official SDKs as clients of the app (over ASGI, no network)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage.models import Conversation, LLMCall, Message, WorkflowExecution
from conftest import Actor, make_settings
from fakes.anthropic_server import FakeAnthropicServer
from fakes.openai_server import FakeOpenAIServer

ALIASES = {"fast": "openai/gpt-4o-mini", "claude": "anthropic/claude-3-5-haiku-latest"}


def compat_settings(
    database_url: str,
    openai_fake: FakeOpenAIServer,
    anthropic_fake: FakeAnthropicServer,
    **overrides: object,
) -> Settings:
    return make_settings(
        database_url,
        openai_base_url=openai_fake.base_url,
        openai_api_key="test-key",
        anthropic_base_url=anthropic_fake.base_url,
        anthropic_api_key="test-key",
        model_aliases=ALIASES,
        **overrides,
    )


@dataclass(frozen=True)
class Clients:
    key: str
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


async def new_user(http: httpx.AsyncClient) -> tuple[Actor, str]:
    """A user (with an access token in its headers) and an API key of theirs."""
    email, password = f"user-{new_id().lower()}@example.com", "correct horse battery"
    registered = await http.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert registered.status_code == 201, registered.text
    login = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    user = Actor(registered.json()["id"], email, password, headers)
    created = await http.post("/api/v1/auth/api-keys", json={"name": "sdk"}, headers=headers)
    assert created.status_code == 201, created.text
    return user, created.json()["key"]


def sdk_clients(base_url: str, key: str) -> Clients:
    """The official SDKs, each with its own HTTP client, against the live server."""
    return Clients(
        key=key,
        openai=openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0),
        anthropic=anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0),
    )


@dataclass(frozen=True)
class Recorded:
    """What Chatter stored for one call, by its conversation."""

    conversation: Any
    messages: list[Any]
    execution: Any
    calls: list[Any]


async def recorded(engine: AsyncEngine, conversation_id: str) -> Recorded:
    async with engine.connect() as connection:
        conversation = (
            await connection.execute(select(Conversation).where(Conversation.id == conversation_id))
        ).one()
        messages = (
            await connection.execute(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.sequence)
            )
        ).all()
        execution = (
            await connection.execute(
                select(WorkflowExecution)
                .where(WorkflowExecution.conversation_id == conversation_id)
                .order_by(WorkflowExecution.started_at.desc())
                .limit(1)
            )
        ).one()
        calls = (
            await connection.execute(select(LLMCall).where(LLMCall.execution_id == execution.id))
        ).all()
    return Recorded(conversation, list(messages), execution, list(calls))


def money(value: Any) -> Decimal:
    return Decimal(str(value))


@dataclass(frozen=True)
class Expected:
    prompt: int
    completion: int
    cached: int = 0
    reasoning: int = 0


async def assert_accounted(
    http: httpx.AsyncClient,
    user: Actor,
    engine: AsyncEngine,
    conversation_id: str,
    correlation_id: str,
    expected: Expected,
) -> Recorded:
    """The turn's one model call, with exactly these tokens, on its LLMCall row, its
    assistant message, its execution, its events and the user's analytics summary."""
    stored = await recorded(engine, conversation_id)
    (call,) = stored.calls
    tokens = (call.prompt_tokens, call.completion_tokens, call.cached_tokens, call.reasoning_tokens)
    assert tokens == (expected.prompt, expected.completion, expected.cached, expected.reasoning)
    assert call.usage_source == "provider"
    assert call.correlation_id == correlation_id
    assistant = stored.messages[-1]
    assert assistant.role == "assistant"
    assert assistant.correlation_id == correlation_id
    for row in (assistant, stored.execution):
        assert row.prompt_tokens == expected.prompt
        assert row.completion_tokens == expected.completion
        assert row.cached_tokens == expected.cached
    assert assistant.cost == call.cost == stored.execution.total_cost
    history = await http.get(
        "/api/v1/events/history",
        params={"correlation_id": correlation_id, "limit": 100},
        headers=user.headers,
    )
    events = history.json()["items"]
    (llm_event,) = [e for e in events if e["type"] == "llm_call_completed"]
    assert llm_event["data"]["prompt_tokens"] == expected.prompt
    assert llm_event["data"]["cached_tokens"] == expected.cached
    assert money(llm_event["data"]["cost"]) == call.cost
    assert "workflow_completed" in {e["type"] for e in events}
    summary = (await http.get("/api/v1/analytics/summary", headers=user.headers)).json()
    totals = await user_totals(engine, user.id)
    assert (summary["requests"], summary["prompt_tokens"], money(summary["cost"])) == totals
    return stored


async def user_totals(engine: AsyncEngine, user_id: str) -> tuple[int, int, Decimal]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    func.count(LLMCall.id),
                    func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
                    func.coalesce(func.sum(LLMCall.cost), 0),
                )
                .join(WorkflowExecution, WorkflowExecution.id == LLMCall.execution_id)
                .where(WorkflowExecution.user_id == user_id)
            )
        ).one()
    return int(row[0]), int(row[1]), money(row[2])

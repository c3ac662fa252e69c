"""Budgets and rate limits on the compatible endpoints, with the official `openai` and
`anthropic` packages as clients: a refused call is the budget's 402 or the rate limit's 429
in the format's own error shape (with Retry-After and the RateLimit-* headers), it never
reaches the upstream model and it writes no conversation, message or execution."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from budget_support import events_of, my_usage, open_reservations, set_budget
from compat_support import compat_settings, new_user, sdk_clients
from events_support import make_admin
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from chatter.storage.models import Conversation, LLMCall, Message, WorkflowExecution
from conftest import live_server
from fakes.anthropic_server import FakeAnthropicServer
from fakes.openai_server import FakeOpenAIServer

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-3-5-haiku-latest"
HI: list[Any] = [{"role": "user", "content": "Hi"}]
REQUESTS_PER_MINUTE = 3


@pytest.fixture(scope="module")
def settings(
    database_url: str, fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer
) -> Settings:
    """Budgets; rate limits far away (conftest's defaults)."""
    return compat_settings(
        database_url,
        fake_openai,
        fake_anthropic,
        budgets={"default_reserve_output_tokens": 50, "sweep_interval_s": 3600},
    )


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def limited_server(
    database_url: str, fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer
) -> AsyncIterator[str]:
    """A second app on the same database with a small request rate limit."""
    settings = compat_settings(
        database_url,
        fake_openai,
        fake_anthropic,
        rate_limits={"requests_per_minute": REQUESTS_PER_MINUTE},
    )
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def limited_http(limited_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited_server, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def admin(http: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    actor, _ = await new_user(http)
    await make_admin(engine, actor.id)
    return actor.headers


@pytest.fixture
def claude(fake_anthropic: FakeAnthropicServer) -> Iterator[FakeAnthropicServer]:
    fake_anthropic.reset()
    yield fake_anthropic
    fake_anthropic.reset()


@dataclass(frozen=True)
class Written:
    conversations: int
    messages: int
    executions: int
    llm_calls: int


async def written(engine: AsyncEngine, user_id: str) -> Written:
    """Everything a turn writes, counted for one user."""
    async with engine.connect() as connection:
        conversations = await connection.scalar(
            select(func.count()).where(Conversation.user_id == user_id)
        )
        messages = await connection.scalar(
            select(func.count())
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.user_id == user_id)
        )
        executions = await connection.scalar(
            select(func.count()).where(WorkflowExecution.user_id == user_id)
        )
        calls = await connection.scalar(
            select(func.count())
            .select_from(LLMCall)
            .join(WorkflowExecution, WorkflowExecution.id == LLMCall.execution_id)
            .where(WorkflowExecution.user_id == user_id)
        )
    counts = (conversations, messages, executions, calls)
    return Written(*(int(count or 0) for count in counts))


def upstream_calls(fake: FakeOpenAIServer, claude: FakeAnthropicServer) -> int:
    return len(fake.requests) + len(claude.requests)


def openai_error(exc: openai.APIStatusError, status: int, kind: str, code: str) -> str:
    """OpenAI's error shape, exactly; the message."""
    assert exc.status_code == status, exc.response.text
    assert exc.response.headers["content-type"].startswith("application/json")
    body = exc.response.json()
    message = body["error"]["message"]
    assert body == {"error": {"message": message, "type": kind, "code": code, "param": None}}
    assert (exc.code, exc.type) == (code, kind)  # what the SDK read from it
    assert exc.response.headers["x-correlation-id"]
    return str(message)


def anthropic_error(exc: anthropic.APIStatusError, status: int, kind: str) -> str:
    """Anthropic's error shape, exactly; the message."""
    assert exc.status_code == status, exc.response.text
    assert exc.response.headers["content-type"].startswith("application/json")
    body = exc.response.json()
    message = body["error"]["message"]
    assert body == {"type": "error", "error": {"type": kind, "message": message}}
    assert exc.response.headers["x-correlation-id"]
    return str(message)


def assert_retry_after(response: httpx.Response) -> None:
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["RateLimit-Limit"] == str(REQUESTS_PER_MINUTE)
    assert response.headers["RateLimit-Remaining"] == "0"


def assert_quota_headers(headers: httpx.Headers, remaining: int) -> None:
    assert headers["RateLimit-Limit"] == str(REQUESTS_PER_MINUTE)
    assert headers["RateLimit-Remaining"] == str(remaining)
    assert 1 <= int(headers["RateLimit-Reset"]) <= 60


# Budgets


async def test_spent_budget_openai_sdk_gets_a_402_in_openai_shape(
    server: str,
    http: httpx.AsyncClient,
    admin: dict[str, str],
    fake: FakeOpenAIServer,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    user, key = await new_user(http)
    sdk = sdk_clients(server, key).openai
    await set_budget(http, admin, user.id, daily_tokens=10_000)
    raw = await sdk.chat.completions.with_raw_response.create(model=GPT, messages=HI)
    conversation_id = raw.headers["x-chatter-conversation-id"]
    spent = (await my_usage(http, user.headers))["day"]["spent_tokens"]
    assert spent > 0
    # Exhausted: what was spent is the whole budget.
    await set_budget(http, admin, user.id, daily_tokens=spent)
    before, upstream = await written(engine, user.id), upstream_calls(fake, claude)

    refusals: list[openai.APIStatusError] = []
    with pytest.raises(openai.APIStatusError) as plain:
        await sdk.chat.completions.create(model=GPT, messages=HI)
    refusals.append(plain.value)
    with pytest.raises(openai.APIStatusError) as streamed:
        await sdk.chat.completions.create(
            model=GPT, messages=HI, stream=True, stream_options={"include_usage": True}
        )
    refusals.append(streamed.value)
    with pytest.raises(openai.APIStatusError) as continued:
        await sdk.chat.completions.create(
            model=GPT,
            messages=[*HI, {"role": "assistant", "content": "Hello"}, *HI],
            stream=True,
            extra_headers={"X-Chatter-Conversation-Id": conversation_id},
        )
    refusals.append(continued.value)
    with pytest.raises(openai.APIStatusError) as other_provider:
        await sdk.chat.completions.create(model=CLAUDE, messages=HI, max_tokens=20)
    refusals.append(other_provider.value)

    for refused in refusals:
        message = openai_error(refused, 402, "insufficient_quota", "budget_exceeded")
        assert "daily tokens budget" in message
    assert upstream_calls(fake, claude) == upstream
    assert await written(engine, user.id) == before
    assert len(await events_of(engine, user.id, "budget_exceeded")) == len(refusals)
    assert await open_reservations(engine, user.id) == 0


async def test_spent_budget_anthropic_sdk_gets_a_402_in_anthropic_shape(
    server: str,
    http: httpx.AsyncClient,
    admin: dict[str, str],
    fake: FakeOpenAIServer,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    user, key = await new_user(http)
    sdk = sdk_clients(server, key).anthropic
    await set_budget(http, admin, user.id, daily_tokens=10_000)
    raw = await sdk.messages.with_raw_response.create(model=CLAUDE, max_tokens=20, messages=HI)
    conversation_id = raw.headers["x-chatter-conversation-id"]
    spent = (await my_usage(http, user.headers))["day"]["spent_tokens"]
    assert spent > 0
    await set_budget(http, admin, user.id, daily_tokens=spent)
    before, upstream = await written(engine, user.id), upstream_calls(fake, claude)

    refusals: list[anthropic.APIStatusError] = []
    with pytest.raises(anthropic.APIStatusError) as plain:
        await sdk.messages.create(model=CLAUDE, max_tokens=20, messages=HI)
    refusals.append(plain.value)
    with pytest.raises(anthropic.APIStatusError) as streamed:
        await sdk.messages.create(model=CLAUDE, max_tokens=20, messages=HI, stream=True)
    refusals.append(streamed.value)
    with pytest.raises(anthropic.APIStatusError) as helper:
        async with sdk.messages.stream(
            model=CLAUDE,
            max_tokens=20,
            messages=[*HI, {"role": "assistant", "content": "Hello"}, *HI],
            extra_headers={"X-Chatter-Conversation-Id": conversation_id},
        ) as stream:
            await stream.get_final_message()
    refusals.append(helper.value)
    with pytest.raises(anthropic.APIStatusError) as other_provider:
        await sdk.messages.create(model=GPT, max_tokens=20, messages=HI)
    refusals.append(other_provider.value)

    for refused in refusals:
        assert "daily tokens budget" in anthropic_error(refused, 402, "billing_error")
    assert upstream_calls(fake, claude) == upstream
    assert await written(engine, user.id) == before
    assert len(await events_of(engine, user.id, "budget_exceeded")) == len(refusals)
    assert await open_reservations(engine, user.id) == 0


async def test_a_reservation_that_cannot_fit_is_refused_before_the_first_write(
    server: str,
    http: httpx.AsyncClient,
    admin: dict[str, str],
    fake: FakeOpenAIServer,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    """Nothing spent yet, but a budget smaller than one call's reservation: the user's
    first calls are refused, and they never had a conversation."""
    user, key = await new_user(http)
    sdk = sdk_clients(server, key)
    await set_budget(http, admin, user.id, monthly_tokens=5)
    with pytest.raises(openai.APIStatusError) as by_openai:
        await sdk.openai.chat.completions.create(model=GPT, messages=HI, stream=True)
    assert "monthly tokens budget" in openai_error(
        by_openai.value, 402, "insufficient_quota", "budget_exceeded"
    )
    with pytest.raises(anthropic.APIStatusError) as by_anthropic:
        await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=1, messages=HI)
    assert "monthly tokens budget" in anthropic_error(by_anthropic.value, 402, "billing_error")
    assert upstream_calls(fake, claude) == 0
    assert await written(engine, user.id) == Written(0, 0, 0, 0)
    (first, second) = await events_of(engine, user.id, "budget_exceeded")
    assert first.data["period"] == second.data["period"] == "month"
    assert await open_reservations(engine, user.id) == 0


# Rate limits


async def test_rate_limited_openai_sdk_gets_a_429_in_openai_shape(
    limited_server: str,
    limited_http: httpx.AsyncClient,
    fake: FakeOpenAIServer,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    user, key = await new_user(limited_http)
    sdk = sdk_clients(limited_server, key).openai
    for remaining, stream in ((2, False), (1, True), (0, False)):
        raw = await sdk.chat.completions.with_raw_response.create(
            model=GPT, messages=HI, stream=stream
        )
        assert raw.status_code == 200
        assert_quota_headers(raw.headers, remaining)
        if stream:
            chunks = [chunk async for chunk in raw.parse()]  # type: ignore[union-attr]
            assert chunks
        else:
            assert raw.parse().choices[0].message.content  # type: ignore[union-attr]
    before, upstream = await written(engine, user.id), upstream_calls(fake, claude)
    assert (before.conversations, upstream) == (3, 3)

    with pytest.raises(openai.RateLimitError) as plain:
        await sdk.chat.completions.create(model=GPT, messages=HI)
    with pytest.raises(openai.RateLimitError) as streamed:
        await sdk.chat.completions.create(model=CLAUDE, messages=HI, stream=True)
    for refused in (plain.value, streamed.value):
        openai_error(refused, 429, "rate_limit_error", "rate_limited")
        assert_retry_after(refused.response)
    assert upstream_calls(fake, claude) == upstream
    assert await written(engine, user.id) == before


async def test_rate_limited_anthropic_sdk_gets_a_429_in_anthropic_shape(
    limited_server: str,
    limited_http: httpx.AsyncClient,
    fake: FakeOpenAIServer,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    user, key = await new_user(limited_http)
    sdk = sdk_clients(limited_server, key).anthropic
    for remaining, stream in ((2, True), (1, False), (0, False)):
        raw = await sdk.messages.with_raw_response.create(
            model=CLAUDE, max_tokens=20, messages=HI, stream=stream
        )
        assert raw.status_code == 200
        assert_quota_headers(raw.headers, remaining)
        if stream:
            events = [event.type async for event in await raw.parse()]  # type: ignore[union-attr]
            assert events[-1] == "message_stop"
        else:
            assert (await raw.parse()).content  # type: ignore[union-attr]
    before, upstream = await written(engine, user.id), upstream_calls(fake, claude)
    assert (before.conversations, upstream) == (3, 3)

    with pytest.raises(anthropic.RateLimitError) as plain:
        await sdk.messages.create(model=CLAUDE, max_tokens=20, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as streamed:
        async with sdk.messages.stream(model=GPT, max_tokens=20, messages=HI) as stream:
            await stream.get_final_message()
    for refused in (plain.value, streamed.value):
        anthropic_error(refused, 429, "rate_limit_error")
        assert_retry_after(refused.response)
    assert upstream_calls(fake, claude) == upstream
    assert await written(engine, user.id) == before


async def test_a_spent_token_window_is_a_429_in_each_shape(
    limited_server: str,
    limited_http: httpx.AsyncClient,
    admin: dict[str, str],
    fake: FakeOpenAIServer,
    claude: FakeAnthropicServer,
    engine: AsyncEngine,
) -> None:
    """A streamed compatible turn counts its tokens when it closes; once the window is
    spent, both routes refuse before the model, in their own shapes."""
    user, key = await new_user(limited_http)
    sdk = sdk_clients(limited_server, key)
    put = await limited_http.put(
        f"/api/v1/admin/users/{user.id}/rate-limits",
        json={"tokens_per_minute": 10},
        headers=admin,
    )
    assert put.status_code == 200, put.text
    stream = await sdk.openai.chat.completions.create(model=GPT, messages=HI, stream=True)
    assert [chunk async for chunk in stream]
    before, upstream = await written(engine, user.id), upstream_calls(fake, claude)
    assert before.executions == upstream == 1

    with pytest.raises(openai.RateLimitError) as by_openai:
        await sdk.openai.chat.completions.create(model=GPT, messages=HI)
    assert "tokens" in openai_error(by_openai.value, 429, "rate_limit_error", "rate_limited")
    with pytest.raises(anthropic.RateLimitError) as by_anthropic:
        await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=20, messages=HI)
    assert "tokens" in anthropic_error(by_anthropic.value, 429, "rate_limit_error")
    for refused in (by_openai.value, by_anthropic.value):
        assert 1 <= int(refused.response.headers["Retry-After"]) <= 60
    assert upstream_calls(fake, claude) == upstream
    assert await written(engine, user.id) == before

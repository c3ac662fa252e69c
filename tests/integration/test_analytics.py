"""Analytics: every finished execution is in the rollups the moment its close commits, the
rollups equal the sums over the raw rows after a mixed parallel workload, and the API reads
them owner-scoped, with clear 422s for bad ranges."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from accounting import assert_invariants, assert_rollups_match
from fastapi import FastAPI
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.container import Container
from chatter.domain.clock import utcnow
from chatter.domain.enums import UserRole
from chatter.domain.ids import new_id
from chatter.services.chat import ChatRequest
from chatter.settings import Settings
from chatter.storage.models import Conversation, User
from chatter.storage.rollup_queries import covering_segments
from chatter.storage.rollup_tables import usage_rollups
from chatter.workflows.events import TextDelta
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

SUMMARY = "/api/v1/analytics/summary"
USAGE = "/api/v1/analytics/usage"


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai, llm={"max_retries": 0})


def container_of(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


def scripted(request: dict[str, Any]) -> FakeReply:
    """Replies by what the turn asks: a tool round trip, a failure, a slow stream."""
    last = request["messages"][-1]
    if last["role"] == "tool":
        return FakeReply(content="The answer is 42.")
    text = str(last.get("content"))
    if "calculate" in text:
        return FakeReply(
            content="", tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}]
        )
    if "fail" in text:
        return FakeReply(status=500, error_message="upstream down")
    if "slow" in text:
        return FakeReply(content="word " * 200, chunk_delay_s=0.01)
    return FakeReply(content="Plain answer.")


@pytest.fixture
def responder(fake: FakeOpenAIServer) -> FakeOpenAIServer:
    fake.set_responder(scripted)
    return fake


async def make_admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    email, password = f"admin-{new_id().lower()}@example.com", "admin password 123"
    container = container_of(app)
    async with container.sessions() as session:
        await container.accounts.create_user(
            session=session, email=email, password=password, role=UserRole.ADMIN
        )
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def turn(client: httpx.AsyncClient, actor: Actor, message: str, **body: Any) -> int:
    response = await client.post(
        "/api/v1/chat", json={"message": message, **body}, headers=actor.headers
    )
    return response.status_code


async def stream_turn(client: httpx.AsyncClient, actor: Actor, message: str) -> int:
    """A streamed turn, read to its end."""
    async with client.stream(
        "POST", "/api/v1/chat/stream", json={"message": message}, headers=actor.headers
    ) as response:
        body = "".join([line async for line in response.aiter_lines()])
    assert "event: done" in body, body[-500:]
    return response.status_code


async def leave_mid_stream(app: FastAPI, actor: Actor) -> None:
    """A client going away mid-stream: the turn closes as cancelled."""
    chat = container_of(app).chat
    async with container_of(app).sessions() as session:
        user = await session.get(User, actor.id)
        assert user is not None
        admitted = await chat.admit(
            session=session,
            user=user,
            request=ChatRequest(message="slow please"),
            correlation_id=new_id(),
        )
    stream = chat.stream(admitted)
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()


async def conversation_tokens(engine: AsyncEngine, user_id: str) -> int:
    async with engine.connect() as connection:
        total = await connection.scalar(
            select(func.coalesce(func.sum(Conversation.total_tokens), 0)).where(
                Conversation.user_id == user_id
            )
        )
    return int(total or 0)


async def test_a_mixed_parallel_workload_adds_up(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    responder: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    alice = await make_user()
    work = [
        turn(client, alice, "hello"),
        turn(client, alice, "please calculate 6*7", workflow="chat_with_tools"),
        turn(client, alice, "this will fail"),
        turn(client, alice, "hello again"),
        leave_mid_stream(app, alice),
        stream_turn(client, alice, "a streamed hello"),
        turn(client, alice, "calculate again", workflow="chat_with_tools"),
    ]
    results = await asyncio.gather(*work)
    assert sorted(r for r in results if r is not None) == [200, 200, 200, 200, 200, 502]

    summary = (await client.get(SUMMARY, headers=alice.headers)).json()
    assert summary["total_tokens"] == await conversation_tokens(engine, alice.id)
    assert summary["executions"] == 7
    assert summary["errors"] == 1
    assert summary["cancelled"] == 1
    assert summary["tool_calls"] == 2
    assert summary["currency"] == "USD"
    assert Decimal(summary["cost"]) > 0
    assert summary["latency_p50_ms"] is not None
    assert summary["top_users"] is None
    assert summary["active_users"] is None
    await assert_invariants(engine)  # rollups = sums over the LLM-call rows, too

    # A new turn is in the summary as soon as its response is.
    assert await turn(client, alice, "one more") == 200
    after = (await client.get(SUMMARY, headers=alice.headers)).json()
    assert after["executions"] == 8
    assert after["total_tokens"] == await conversation_tokens(engine, alice.id)


async def test_concurrent_turns_of_many_users_keep_rollups_exact(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    responder: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    users = [await make_user() for _ in range(3)]
    await asyncio.gather(*(turn(client, user, f"hello {i}") for i in range(4) for user in users))
    for user in users:
        summary = (await client.get(SUMMARY, headers=user.headers)).json()
        assert summary["executions"] == 4
        assert summary["total_tokens"] == await conversation_tokens(engine, user.id)
    await assert_rollups_match(engine)


async def test_series_groups_and_csv(
    client: httpx.AsyncClient, make_user: UserFactory, responder: FakeOpenAIServer
) -> None:
    bob = await make_user()
    assert await turn(client, bob, "hello") == 200
    assert await turn(client, bob, "calculate it", workflow="chat_with_tools") == 200
    series = await client.get(
        USAGE,
        params={"granularity": "minute", "group_by": "model,workflow"},
        headers=bob.headers,
    )
    assert series.status_code == 200, series.text
    body = series.json()
    assert body["group_by"] == ["model", "workflow"]
    by_workflow = {point["workflow"]: point for point in body["points"]}
    assert set(by_workflow) == {"chat", "chat_with_tools"}
    assert by_workflow["chat_with_tools"]["requests"] == 2
    assert by_workflow["chat_with_tools"]["tool_calls"] == 1
    summary = (await client.get(SUMMARY, headers=bob.headers)).json()
    hourly = (await client.get(USAGE, headers=bob.headers)).json()
    assert sum(p["total_tokens"] for p in hourly["points"]) == summary["total_tokens"]
    assert sum(Decimal(p["cost"]) for p in hourly["points"]) == Decimal(summary["cost"])

    download = await client.get(USAGE, params={"format": "csv"}, headers=bob.headers)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert sum(int(row["total_tokens"]) for row in rows) == summary["total_tokens"]
    summary_csv = await client.get(SUMMARY, params={"format": "csv"}, headers=bob.headers)
    (row,) = list(csv.DictReader(io.StringIO(summary_csv.text)))
    assert int(row["total_tokens"]) == summary["total_tokens"]
    assert row["currency"] == "USD"


async def test_users_see_only_their_own_and_admins_everyone(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    responder: FakeOpenAIServer,
) -> None:
    carol, dave = await make_user(), await make_user()
    assert await turn(client, carol, "hello") == 200
    nothing = (await client.get(SUMMARY, headers=dave.headers)).json()
    assert (nothing["executions"], nothing["total_tokens"], nothing["cost"]) == (0, 0, "0")
    assert nothing["latency_p50_ms"] is None
    assert (nothing["top_models"], nothing["top_conversations"]) == ([], [])
    peek = await client.get(SUMMARY, params={"user_id": carol.id}, headers=dave.headers)
    assert peek.status_code == 403
    assert peek.json()["error"]["code"] == "forbidden"

    admin = await make_admin(app, client)
    everyone = (await client.get(SUMMARY, headers=admin)).json()
    assert everyone["active_users"] >= 1
    assert carol.id in {user["user_id"] for user in everyone["top_users"]}
    # Everyone's figures come from the table summed over users; by user, from per-user rows.
    series = (await client.get(USAGE, params={"granularity": "day"}, headers=admin)).json()
    per_user = await client.get(
        USAGE, params={"granularity": "day", "group_by": "user"}, headers=admin
    )
    assert sum(p["total_tokens"] for p in series["points"]) == everyone["total_tokens"]
    assert sum(p["total_tokens"] for p in per_user.json()["points"]) == everyone["total_tokens"]
    assert carol.id in {p["user_id"] for p in per_user.json()["points"]}
    one = (await client.get(SUMMARY, params={"user_id": carol.id}, headers=admin)).json()
    mine = (await client.get(SUMMARY, headers=carol.headers)).json()
    assert one["total_tokens"] == mine["total_tokens"] > 0
    (top,) = mine["top_conversations"]
    conversation = await client.get(
        f"/api/v1/analytics/conversations/{top['conversation_id']}", headers=carol.headers
    )
    assert conversation.status_code == 200
    assert conversation.json()["total_tokens"] == top["total_tokens"]
    assert conversation.json()["by_model"][0]["requests"] == 1
    hidden = await client.get(
        f"/api/v1/analytics/conversations/{top['conversation_id']}", headers=dave.headers
    )
    assert hidden.status_code == 404


@pytest.mark.parametrize(
    ("url", "params", "fragment"),
    [
        (SUMMARY, {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "before"),
        (USAGE, {"group_by": "provider,colour"}, "colour"),
        (USAGE, {"granularity": "second"}, "granularity"),
        (USAGE, {"granularity": "minute", "start": "2026-01-01T00:00:00Z"}, "coarser"),
        (USAGE, {"start": "yesterday"}, ""),
        (SUMMARY, {"end": "9999-12-31T23:59:59"}, "between"),
        (SUMMARY, {"start": "0001-01-01T00:00:00+01:00"}, "between"),
        (USAGE, {"end": "0001-01-01T10:00:00"}, "between"),
        (USAGE, {"granularity": "day", "start": "1900-01-01T00:00:00Z"}, "between"),
    ],
)
async def test_bad_ranges_and_keys_are_422(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    url: str,
    params: dict[str, str],
    fragment: str,
) -> None:
    erin = await make_user()
    response = await client.get(url, params=params, headers=erin.headers)
    assert response.status_code == 422, response.text
    assert fragment in response.text
    assert "error" in response.json()


async def test_minute_buckets_are_cleaned_up_and_hours_kept(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    frank = await make_user()
    old = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    async with engine.begin() as connection:
        for granularity in ("minute", "hour"):
            await connection.execute(
                insert(usage_rollups).values(
                    granularity=granularity,
                    bucket=old,
                    user_id=frank.id,
                    provider="openai",
                    model="gpt-4o-mini",
                    workflow="chat",
                    currency="USD",
                    requests=1,
                    total_tokens=10,
                    cost=Decimal("0.001"),
                )
            )
    assert await container_of(app).analytics.cleanup_once() >= 1
    async with engine.connect() as connection:
        left = (
            await connection.execute(
                select(usage_rollups.c.granularity).where(usage_rollups.c.user_id == frank.id)
            )
        ).scalars()
        assert list(left) == ["hour"]
    # A range that starts before the retention resolves to hours, and still sees it.
    summary = await client.get(
        SUMMARY, params={"start": (old - timedelta(minutes=30)).isoformat()}, headers=frank.headers
    )
    assert summary.json()["total_tokens"] == 10
    async with engine.begin() as connection:  # not a real execution: leave no trace
        await connection.execute(usage_rollups.delete().where(usage_rollups.c.user_id == frank.id))


async def test_check_and_rebuild(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: UserFactory,
    responder: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    gina = await make_user()
    assert await turn(client, gina, "hello") == 200
    analytics = container_of(app).analytics
    since = utcnow() - timedelta(days=1)
    assert await analytics.check(since) == []
    before = (await client.get(SUMMARY, headers=gina.headers)).json()
    async with engine.begin() as connection:
        await connection.execute(
            update(usage_rollups)
            .where(usage_rollups.c.user_id == gina.id, usage_rollups.c.granularity == "day")
            .values(total_tokens=usage_rollups.c.total_tokens + 5)
        )
    differences = await analytics.check(since)
    assert [d.column for d in differences] == ["total_tokens"]
    days: list[int] = []
    assert await analytics.rebuild(since, lambda day, done, total: days.append(done)) >= 1
    assert days
    assert await analytics.check(since) == []
    after = (await client.get(SUMMARY, headers=gina.headers)).json()
    assert {**after, "end": None} == {**before, "end": None}
    await assert_invariants(engine)


def test_ranges_are_covered_by_the_coarsest_buckets() -> None:
    start = datetime(2026, 1, 1, 22, 30, 15, tzinfo=UTC)
    end = datetime(2026, 1, 4, 1, 15, tzinfo=UTC)
    segments = covering_segments(start, end, minutes_from=datetime(2025, 1, 1, tzinfo=UTC))
    spans = [(s.granularity, s.start.isoformat(), s.end.isoformat()) for s in segments]
    assert sorted(spans) == sorted(
        [
            ("minute", "2026-01-01T22:30:00+00:00", "2026-01-01T23:00:00+00:00"),
            ("minute", "2026-01-04T01:00:00+00:00", "2026-01-04T01:15:00+00:00"),
            ("hour", "2026-01-01T23:00:00+00:00", "2026-01-02T00:00:00+00:00"),
            ("hour", "2026-01-04T00:00:00+00:00", "2026-01-04T01:00:00+00:00"),
            ("day", "2026-01-02T00:00:00+00:00", "2026-01-04T00:00:00+00:00"),
        ]
    )
    # Before the minute retention: whole hours.
    late = covering_segments(start, end, minutes_from=datetime(2027, 1, 1, tzinfo=UTC))
    assert {s.granularity for s in late} == {"hour", "day"}
    assert late[0].start.minute == 0 or any(s.start.hour == 22 for s in late)

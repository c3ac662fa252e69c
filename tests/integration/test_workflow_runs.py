"""Definitions run on the one executor: every model call of every node is accounted once, on
the message, the execution, the conversation, /metrics and the analytics summary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from events_support import make_admin
from metrics_support import Samples, scrape, value
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import read_events
from workflow_support import (
    DEFINITIONS,
    calculator_call,
    calls_of,
    create,
    execute,
    three_models,
    tool_loop,
    usage,
    with_memory,
)

from chatter.settings import Settings
from chatter.storage.models import Event, ToolInvocation
from conftest import Actor, UserFactory, live_server, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

SCRAPE_TOKEN = "scrape-token-workflows-0123456789"
SCRAPER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
LABELS = {"provider": "openai", "model": "gpt-4o-mini"}
TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens")


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url,
        fake_openai,
        metrics={"scrape_token": SCRAPE_TOKEN},
        events={"relay_grace_s": 0},
    )


@pytest.fixture
async def fresh(make_user: UserFactory) -> Actor:
    """A user of their own per test: their analytics summary is this test's usage."""
    return await make_user()


def delta(after: Samples, before: Samples, kind: str) -> float:
    name = "chatter_llm_tokens_total"
    return value(after, name, kind=kind, **LABELS) - value(before, name, kind=kind, **LABELS)


async def assert_accounted_everywhere(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    user: Actor,
    body: dict[str, Any],
    before: Samples,
    expected_calls: int,
) -> list[Any]:
    execution = body["execution"]
    calls = await calls_of(engine, execution["id"])
    assert len(calls) == expected_calls == execution["llm_call_count"]
    for field in TOKENS:
        total = sum(getattr(call, field) for call in calls)
        assert execution[field] == total, field
        assert body["assistant_message"][field] == total, field
        assert body["conversation"][field] == total, field  # a new conversation
    cost = sum((Decimal(call.cost) for call in calls), Decimal(0))
    assert Decimal(execution["total_cost"]) == cost
    assert Decimal(body["assistant_message"]["cost"]) == cost
    after = await scrape(client, SCRAPER)
    assert delta(after, before, "prompt") == execution["prompt_tokens"]
    assert delta(after, before, "completion") == execution["completion_tokens"]
    summary = (await client.get("/api/v1/analytics/summary", headers=user.headers)).json()
    assert summary["total_tokens"] == execution["total_tokens"]
    assert summary["requests"] == expected_calls
    assert summary["executions"] == 1
    assert Decimal(summary["cost"]) == cost
    await assert_invariants(engine)
    return calls


@pytest.fixture(scope="module")
async def admin(make_user: UserFactory, engine: AsyncEngine) -> Actor:
    actor = await make_user()
    await make_admin(engine, actor.id)
    return actor


async def test_three_model_nodes_one_call_each_summed_everywhere(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    definition_id = await create(client, fresh, three_models())
    fake.enqueue(
        FakeReply(content="A draft.", usage=usage(100, 20, 10)),
        FakeReply(content="A critique.", usage=usage(130, 30)),
        FakeReply(content="The answer.", usage=usage(170, 40, 50)),
    )
    before = await scrape(client, SCRAPER)
    response = await execute(client, fresh, definition_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assistant_message"]["content"] == "The answer."
    calls = await assert_accounted_everywhere(client, engine, fresh, body, before, 3)
    assert [call.node for call in calls] == ["draft", "critique", "answer"]
    assert body["execution"]["total_tokens"] == 120 + 160 + 210
    # Each node used its own system prompt; the third the turn's (none).
    systems = [r["messages"][0] for r in fake.requests[-3:]]
    assert systems[0] == {"role": "system", "content": "Draft an answer."}
    assert systems[1] == {"role": "system", "content": "Critique it."}
    assert fake.requests[-1]["temperature"] == 0.2
    execution = body["execution"]
    assert execution["definition_id"] == definition_id
    assert execution["definition_version"] == 1
    assert [t["node"] for t in execution["node_timings"]] == ["draft", "critique", "answer"]
    assert [t["total_tokens"] for t in execution["node_timings"]] == [120, 160, 210]


async def test_a_tool_loop_counts_every_call_once(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    definition_id = await create(client, fresh, tool_loop())
    fake.enqueue(
        FakeReply(content="", tool_calls=calculator_call("1+1"), usage=usage(50, 5)),
        FakeReply(content="", tool_calls=calculator_call("2*3"), usage=usage(60, 6)),
        FakeReply(content="", tool_calls=calculator_call("7-2"), usage=usage(70, 7)),
        FakeReply(content="Done: 2, 6, 5.", usage=usage(80, 8)),
    )
    before = await scrape(client, SCRAPER)
    response = await execute(client, fresh, definition_id)
    assert response.status_code == 200, response.text
    body = response.json()
    await assert_accounted_everywhere(client, engine, fresh, body, before, 4)
    assert body["execution"]["total_tokens"] == 55 + 66 + 77 + 88
    assert [m["content"] for m in body["tool_messages"]] == ["2", "6", "5"]
    async with engine.connect() as connection:
        tools = (
            await connection.execute(
                select(ToolInvocation).where(ToolInvocation.execution_id == body["execution"]["id"])
            )
        ).all()
    assert len(tools) == 3
    # Only the tool the node names was declared to the model.
    assert [t["function"]["name"] for t in fake.requests[-1]["tools"]] == ["calculator"]


async def test_the_iteration_limit_fails_the_turn_with_its_calls_accounted(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    definition_id = await create(client, fresh, tool_loop(max_iterations=4))
    fake.set_responder(
        lambda request: FakeReply(content="", tool_calls=calculator_call("1"), usage=usage(9, 1))
    )
    response = await execute(client, fresh, definition_id)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "iteration_limit_reached"
    execution = (
        await client.get(
            f"/api/v1/executions/{error['details']['execution_id']}", headers=fresh.headers
        )
    ).json()
    assert execution["status"] == "failed"
    assert execution["error"].startswith("iteration_limit_reached")
    # think, route, act, think: two model calls before the fifth step was refused.
    assert execution["llm_call_count"] == len(execution["llm_calls"]) == 2
    assert execution["total_tokens"] == 20
    await assert_invariants(engine)


async def test_a_memory_nodes_summary_call_is_accounted(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(content="First answer.", usage=usage(10, 5)))
    first = await client.post("/api/v1/chat", json={"message": "One"}, headers=fresh.headers)
    assert first.status_code == 200, first.text
    conversation_id = first.json()["conversation"]["id"]
    definition_id = await create(client, fresh, with_memory())
    fake.enqueue(
        FakeReply(content="They said One.", usage=usage(30, 6)),
        FakeReply(content="Second answer.", usage=usage(40, 8)),
    )
    response = await execute(
        client, fresh, definition_id, input="Two", conversation_id=conversation_id
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assistant_message"]["content"] == "Second answer."
    calls = await calls_of(engine, body["execution"]["id"])
    assert [call.node for call in calls] == ["memory", "model"]
    assert body["execution"]["total_tokens"] == 36 + 48
    assert body["assistant_message"]["total_tokens"] == 36 + 48
    assert body["conversation"]["total_tokens"] == 15 + 36 + 48
    # The answering call saw the summary and the last two messages only.
    sent = fake.requests[-1]["messages"]
    assert "They said One." in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == ["First answer.", "Two"]
    await assert_invariants(engine)


async def test_chat_runs_a_definition_by_id(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    definition_id = await create(client, fresh, three_models())
    fake.set_responder(lambda request: FakeReply(content="ok", usage=usage(10, 2)))
    response = await client.post(
        "/api/v1/chat", json={"message": "Hi", "workflow": definition_id}, headers=fresh.headers
    )
    assert response.status_code == 200, response.text
    execution = response.json()["execution"]
    assert execution["llm_call_count"] == 3
    assert execution["definition_id"] == definition_id
    assert execution["workflow_name"] == "three_models"
    unknown = await client.post(
        "/api/v1/chat",
        json={"message": "Hi", "workflow": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        headers=fresh.headers,
    )
    assert unknown.status_code == 404, unknown.text
    history = await client.get(
        "/api/v1/workflows/executions",
        params={"definition_id": definition_id, "status": "completed"},
        headers=fresh.headers,
    )
    assert history.status_code == 200, history.text
    assert [e["id"] for e in history.json()["items"]] == [execution["id"]]
    await assert_invariants(engine)


@pytest.fixture(scope="module")
async def base_url(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


async def test_node_events_stream_and_are_on_the_event_stream(
    client: httpx.AsyncClient,
    base_url: str,
    fresh: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    definition_id = await create(client, fresh, tool_loop())
    fake.enqueue(
        FakeReply(content="", tool_calls=calculator_call("6*7"), usage=usage(20, 4)),
        FakeReply(content="42", usage=usage(30, 3)),
    )
    headers = {**fresh.headers, "X-Correlation-ID": "workflow-node-events"}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        http.stream(
            "POST",
            f"{DEFINITIONS}/{definition_id}/execute/stream",
            json={"input": "6*7?"},
            headers=headers,
        ) as response,
    ):
        assert response.status_code == 200
        events = [event async for event in read_events(response)]
    names = [e.event for e in events]
    assert names[0] == "start"
    assert names[-1] == "done"
    nodes = [(e.event, e.data["node"]) for e in events if e.event.startswith("node_")]
    assert nodes == [
        ("node_started", "think"),
        ("node_finished", "think"),
        ("node_started", "route"),
        ("node_finished", "route"),
        ("node_started", "act"),
        ("node_finished", "act"),
        ("node_started", "think"),
        ("node_finished", "think"),
        ("node_started", "route"),
        ("node_finished", "route"),
        ("node_started", "finish"),
        ("node_finished", "finish"),
    ]
    finished = [e.data for e in events if e.event == "node_finished"]
    assert [f["total_tokens"] for f in finished if f["node"] == "think"] == [24, 33]
    assert all(f["duration_ms"] >= 0 and f["status"] == "succeeded" for f in finished)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(Event.type, Event.category, Event.data)
                .where(Event.correlation_id == "workflow-node-events")
                .order_by(Event.id)
            )
        ).all()
    lifecycle = [(row.type, row.data.get("node")) for row in rows if row.type.startswith("node_")]
    assert lifecycle == nodes
    assert {row.category for row in rows if row.type.startswith("node_")} == {"workflow"}
    done = events[-1].data["execution"]
    detail = (await client.get(f"/api/v1/executions/{done['id']}", headers=fresh.headers)).json()
    assert len(detail["node_timings"]) == 6
    await assert_invariants(engine)

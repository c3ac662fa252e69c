"""Monitoring: the live view fed by the bus agrees with the database; the API lists
executions and stats per user; a trace follows one correlation id end to end."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from accounting import assert_invariants
from events_support import make_admin
from fastapi import FastAPI
from monitoring_support import (
    container_of,
    figures,
    figures_of,
    finished_metrics,
    recorded,
    tool_turn,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.domain.monitoring import StatsWindow
from chatter.services.chat import ChatRequest
from chatter.settings import Settings
from chatter.storage.models import LLMCall, ToolInvocation, User, WorkflowExecution
from chatter.workflows.events import TextDelta
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

MONITORING = "/api/v1/monitoring"


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai)


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def bob(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def admin(make_user: UserFactory, engine: AsyncEngine) -> Actor:
    actor = await make_user()
    await make_admin(engine, actor.id)  # the role is read with the user on every request
    return actor


async def test_trace_follows_a_tool_turn_end_to_end(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    admin: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    correlation_id = f"trace-{new_id()}"
    body = (await tool_turn(client, alice, fake, correlation_id)).json()
    execution_id = body["execution"]["id"]
    response = await client.get(f"/api/v1/traces/{correlation_id}", headers=alice.headers)
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["correlation_id"] == correlation_id
    (execution,) = trace["executions"]
    assert execution["execution_id"] == execution_id
    assert execution["status"] == "completed"
    assert (execution["llm_call_count"], execution["tool_call_count"]) == (2, 1)
    assert execution["total_tokens"] == 160
    assert [c["total_tokens"] for c in trace["llm_calls"]] == [60, 100]
    assert sum(Decimal(c["cost"]) for c in trace["llm_calls"]) == Decimal(execution["cost"])
    assert Decimal(execution["cost"]) == Decimal(body["execution"]["total_cost"])
    (tool,) = trace["tool_calls"]
    assert (tool["name"], tool["result"], tool["execution_id"]) == (
        "calculator",
        "42",
        execution_id,
    )
    # Per-node timings: the model calls' latency and the tool's duration, by node.
    nodes: dict[str, int] = {}
    for item in [*trace["llm_calls"], *trace["tool_calls"]]:
        nodes[item["node"]] = nodes.get(item["node"], 0) + item["latency_ms"]
    assert execution["node_timings"] == nodes
    assert len(nodes) == 2
    messages = trace["messages"]
    assert [m["role"] for m in messages] == ["user", "tool", "assistant"]
    assert messages[-1]["content"] == "6*7 is 42."
    types = [e["type"] for e in trace["events"]]
    for expected in ("workflow_started", "tool_called", "workflow_completed"):
        assert expected in types
    assert types.count("llm_call_completed") == 2
    timeline = trace["timeline"]
    assert len(timeline) == sum(
        len(trace[k]) for k in ("executions", "llm_calls", "tool_calls", "messages", "events")
    )
    # The turn's open: its user message and its execution, before any call.
    assert {item["kind"] for item in timeline[:2]} == {"message", "execution"}
    assert [item["at"] for item in timeline] == sorted(item["at"] for item in timeline)
    assert timeline[-1]["kind"] == "event"
    assert [i["type"] for i in timeline if i["kind"] == "event"][-1] in (
        "workflow_completed",
        "conversation_updated",
    )
    # Someone else's trace, and an unknown one, are the same 404; admins may read it.
    for headers, path in (
        (bob.headers, correlation_id),
        (alice.headers, f"unknown-{new_id()}"),
        (alice.headers, "not a valid id!"),
    ):
        denied = await client.get(f"/api/v1/traces/{path}", headers=headers)
        assert denied.status_code == 404, denied.text
        assert denied.json()["error"]["code"] == "not_found"
        # Nothing of the turn (its answer was 42) leaks; ids in the body may hold any digits.
        assert set(denied.json()) == {"error"}
        assert "42" not in denied.json()["error"]["message"]
    seen = await client.get(f"/api/v1/traces/{correlation_id}", headers=admin.headers)
    assert seen.status_code == 200
    assert seen.json()["executions"][0]["execution_id"] == execution_id
    await assert_invariants(engine)


async def test_stats_agree_with_the_database(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    body = (await tool_turn(client, alice, fake, f"stats-{new_id()}")).json()
    execution_id = body["execution"]["id"]
    live = await finished_metrics(container_of(app), execution_id)
    row = await recorded(engine, execution_id)
    assert row.call_tokens == row.tokens
    assert row.call_cost == row.cost
    assert figures(live) == figures_of(row)
    assert (live.llm_call_count, live.tool_call_count) == (2, 1)
    monitoring = container_of(app).monitoring
    # The process started a moment ago: "auto" cannot answer an hour from memory.
    auto = await monitoring.get_workflow_stats(window=StatsWindow.HOUR_1)
    assert auto.source == "database"
    for source in ("live", "database"):
        stats = await monitoring.get_workflow_stats(
            window=StatsWindow.HOUR_1, user_id=alice.id, source=source
        )
        (op,) = [m for m in stats.workflow_ops if m.execution_id == execution_id]
        assert figures(op) == figures_of(row), source
        assert (op.providers, op.models) == (["openai"], ["gpt-4o-mini"]), source
        assert op.time_to_first_token_ms is not None, source
        assert len(op.node_timings) == 2, source
        (openai,) = [g for g in stats.by_provider if g.key == "openai"]
        assert openai.usage.total_tokens >= 160, source
    async with engine.connect() as connection:
        since = utcnow() - timedelta(hours=1)
        mine = WorkflowExecution.user_id == alice.id
        in_window = (mine, WorkflowExecution.started_at >= since)
        count = await connection.scalar(select(func.count()).where(*in_window))
        tokens = await connection.scalar(
            select(func.sum(LLMCall.total_tokens))
            .join(WorkflowExecution, WorkflowExecution.id == LLMCall.execution_id)
            .where(*in_window)
        )
    stats = await monitoring.get_workflow_stats(
        window=StatsWindow.HOUR_1, user_id=alice.id, source="database"
    )
    assert sum(stats.counts_by_status.values()) == count
    assert sum(g.usage.total_tokens for g in stats.by_provider) == tokens
    assert stats.duration_ms.count == count
    assert stats.duration_ms.p50 is not None


async def test_failed_and_cancelled_turns_show_their_status_and_errors(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    fake.enqueue(FakeReply(status=500, error_message="the model is on fire"))
    response = await client.post("/api/v1/chat", json={"message": "hi"}, headers=alice.headers)
    assert response.status_code == 502
    failed_id = response.json()["error"]["details"]["execution_id"]
    cancelled_id = await _cancelled_turn(app, alice, fake)
    failed = await finished_metrics(container_of(app), failed_id)
    assert failed.status == "failed"
    assert any("the model is on fire" in e for e in failed.errors)
    cancelled = await finished_metrics(container_of(app), cancelled_id)
    assert cancelled.status == "cancelled"
    listed = {}
    for status, execution_id in (("failed", failed_id), ("cancelled", cancelled_id)):
        page = await client.get(
            f"{MONITORING}/workflows", params={"status": status}, headers=alice.headers
        )
        assert page.status_code == 200, page.text
        items = {i["execution_id"]: i for i in page.json()["items"]}
        assert items[execution_id]["status"] == status
        listed[status] = items[execution_id]
        assert all(i["status"] == status for i in items.values())
        assert (
            figures(await finished_metrics(container_of(app), execution_id))[1:]
            == (figures_of(await recorded(engine, execution_id))[1:])
        )
    assert any("the model is on fire" in e for e in listed["failed"]["errors"])
    stats = (await client.get(f"{MONITORING}/stats", headers=alice.headers)).json()
    assert stats["counts_by_status"]["failed"] >= 1
    assert stats["counts_by_status"]["cancelled"] >= 1
    assert 0 < stats["error_rate"] < 1
    await assert_invariants(engine)


async def _cancelled_turn(app: FastAPI, user: Actor, fake: FakeOpenAIServer) -> str:
    """A turn whose consumer goes away mid-answer (a client disconnecting)."""
    fake.default_reply = FakeReply(content=" ".join(["word"] * 200), chunk_delay_s=0.01)
    chat = container_of(app).chat
    async with container_of(app).sessions() as session:
        account = await session.get(User, user.id)
        assert account is not None
        admitted = await chat.admit(
            session=session,
            user=account,
            request=ChatRequest(message="long"),
            correlation_id=f"cancel-{new_id()}",
        )
    stream = chat.stream(admitted)
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    await asyncio.sleep(0)
    async with container_of(app).sessions() as session:
        execution_id = await session.scalar(
            select(WorkflowExecution.id).where(
                WorkflowExecution.correlation_id == admitted.correlation_id
            )
        )
    assert execution_id is not None
    return execution_id


async def _turns(client: httpx.AsyncClient, user: Actor, fake: FakeOpenAIServer) -> list[str]:
    """Two openai turns and one on the demo model; their execution ids, oldest first."""
    ids = []
    for body in (
        {"message": "one"},
        {"message": "two", "workflow": "chat_with_tools"},
        {"message": "three", "provider": "demo", "model": "demo-1"},
    ):
        fake.enqueue(FakeReply(content="ok"))
        response = await client.post("/api/v1/chat", json=body, headers=user.headers)
        assert response.status_code == 200, response.text
        ids.append(response.json()["execution"]["id"])
    return ids


async def _listed(client: httpx.AsyncClient, user: Actor, **params: object) -> list[str]:
    response = await client.get(f"{MONITORING}/workflows", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return [item["execution_id"] for item in response.json()["items"]]


async def test_workflows_filter_and_page(
    client: httpx.AsyncClient, make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    carol = await make_user()
    first, second, third = await _turns(client, carol, fake)
    newest_first = [third, second, first]
    assert await _listed(client, carol) == newest_first
    page = await client.get(f"{MONITORING}/workflows?limit=2", headers=carol.headers)
    assert [i["execution_id"] for i in page.json()["items"]] == [third, second]
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    rest = await client.get(
        f"{MONITORING}/workflows", params={"limit": 2, "cursor": cursor}, headers=carol.headers
    )
    assert [i["execution_id"] for i in rest.json()["items"]] == [first]
    assert rest.json()["next_cursor"] is None
    assert await _listed(client, carol, provider="demo") == [third]
    assert await _listed(client, carol, model="gpt-4o-mini") == [second, first]
    assert await _listed(client, carol, workflow="chat_with_tools") == [second]
    assert await _listed(client, carol, status="completed") == newest_first
    assert await _listed(client, carol, status="failed") == []
    future = (utcnow() + timedelta(minutes=5)).isoformat()
    assert await _listed(client, carol, since=future) == []
    past = (utcnow() - timedelta(minutes=5)).isoformat()
    assert await _listed(client, carol, since=past) == newest_first
    item = (await client.get(f"{MONITORING}/workflows", headers=carol.headers)).json()["items"][0]
    assert item["providers"] == ["demo"]
    assert item["currency"] == "USD"
    assert isinstance(item["cost"], str)
    for params, status in (
        ({"since": "2026-01-01T00:00:00"}, 422),  # no UTC offset
        ({"status": "sleeping"}, 422),
        ({"limit": 101}, 422),
        ({"cursor": "bm90LW91cnM"}, 400),
    ):
        refused = await client.get(f"{MONITORING}/workflows", params=params, headers=carol.headers)
        assert refused.status_code == status, (params, refused.text)
        assert "error" in refused.json()


async def test_stats_window_is_validated(client: httpx.AsyncClient, alice: Actor) -> None:
    for window in ("15m", "1h", "24h", "7d"):
        response = await client.get(
            f"{MONITORING}/stats", params={"window": window}, headers=alice.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["window"] == window
    assert (await client.get(f"{MONITORING}/stats", headers=alice.headers)).json()["window"] == "1h"
    for window in ("2h", "", "1H", "7"):
        response = await client.get(
            f"{MONITORING}/stats", params={"window": window}, headers=alice.headers
        )
        assert response.status_code == 422, (window, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    assert (await client.get(f"{MONITORING}/stats")).status_code == 401


async def test_users_see_their_own_and_admins_everyone(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    admin: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    dave, erin = await make_user(), await make_user()
    dave_ids = await _turns(client, dave, fake)
    erin_ids = await _turns(client, erin, fake)
    assert set(await _listed(client, dave, limit=100)) == set(dave_ids)
    assert set(await _listed(client, dave, user_id=dave.id)) == set(dave_ids)
    for path in ("workflows", "stats"):
        refused = await client.get(
            f"{MONITORING}/{path}", params={"user_id": erin.id}, headers=dave.headers
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    everyone = await _listed(client, admin, limit=100)
    assert set(dave_ids + erin_ids) <= set(everyone)
    assert set(await _listed(client, admin, user_id=erin.id)) == set(erin_ids)
    mine = (await client.get(f"{MONITORING}/stats", headers=dave.headers)).json()
    assert mine["counts_by_status"] == {"completed": 3}
    assert mine["security_events"] is None
    assert {op["execution_id"] for op in mine["workflow_ops"]} == set(dave_ids)
    async with engine.connect() as connection:
        tokens = await connection.scalar(
            select(func.sum(LLMCall.total_tokens)).where(LLMCall.execution_id.in_(dave_ids))
        )
        tools = await connection.scalar(
            select(func.count(ToolInvocation.id)).where(ToolInvocation.execution_id.in_(dave_ids))
        )
    assert sum(g["total_tokens"] for g in mine["by_provider"]) == tokens
    assert {g["key"] for g in mine["by_model"]} == {"openai/gpt-4o-mini", "demo/demo-1"}
    assert {g["key"] for g in mine["by_workflow"]} == {"chat", "chat_with_tools"}
    assert sum(op["tool_call_count"] for op in mine["workflow_ops"]) == tools
    server = (await client.get(f"{MONITORING}/stats", headers=admin.headers)).json()
    assert server["security_events"]["login_succeeded"] >= 3
    assert sum(server["counts_by_status"].values()) >= 6
    one = (
        await client.get(f"{MONITORING}/stats", params={"user_id": dave.id}, headers=admin.headers)
    ).json()
    assert one["counts_by_status"] == mine["counts_by_status"]
    assert one["by_provider"] == mine["by_provider"]
    assert one["security_events"] == {}

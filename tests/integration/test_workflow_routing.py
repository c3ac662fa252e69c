"""Definitions that route: model nodes with their own provider, conditionals on variables,
the summarize_then_answer template, tools declared but forbidden after tool calls; and the
execution history."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from sqlalchemy.ext.asyncio import AsyncEngine
from workflow_support import calculator_call, calls_of, create, execute, tool_loop, usage

from chatter.settings import Settings
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai)


@pytest.fixture
async def fresh(make_user: UserFactory) -> Actor:
    return await make_user()


async def test_nodes_name_their_own_provider_and_route_on_variables(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    definition = {
        "name": "by_mode",
        "nodes": [
            {
                "id": "remember",
                "type": "variable",
                "config": {"name": "seen", "op": "append", "source": "last_message"},
            },
            {
                "id": "route",
                "type": "conditional",
                "config": {
                    "branches": [
                        {
                            "label": "short",
                            "when": {"check": "variable", "name": "mode", "value": "short"},
                        }
                    ],
                    "default": "long",
                },
            },
            {"id": "terse", "type": "model", "config": {"system_prompt": "Be terse."}},
            {"id": "offline", "type": "model", "config": {"provider": "demo"}},
        ],
        "edges": [
            {"source": "remember", "target": "route"},
            {"source": "route", "target": "terse", "condition": "short"},
            {"source": "route", "target": "offline", "condition": "long"},
        ],
        "entry": "remember",
    }
    definition_id = await create(client, fresh, definition)
    fake.enqueue(FakeReply(content="Short.", usage=usage(12, 2)))
    short = await execute(client, fresh, definition_id, variables={"mode": "short"})
    assert short.status_code == 200, short.text
    assert short.json()["assistant_message"]["content"] == "Short."
    assert fake.requests[-1]["messages"][0] == {"role": "system", "content": "Be terse."}
    requests_before = len(fake.requests)
    long = await execute(client, fresh, definition_id)
    assert long.status_code == 200, long.text
    assert len(fake.requests) == requests_before  # the demo model answered, offline
    calls = await calls_of(engine, long.json()["execution"]["id"])
    assert [(call.node, call.provider) for call in calls] == [("offline", "demo")]
    assert long.json()["assistant_message"]["provider_used"] == "demo"  # who answered
    assert long.json()["execution"]["total_tokens"] == calls[0].total_tokens > 0
    await assert_invariants(engine)


async def test_the_summarize_then_answer_template_and_the_history_route(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.set_responder(lambda request: FakeReply(content="ok", usage=usage(10, 1)))
    conversation_id = None
    executions = []
    for turn in range(4):
        body: dict[str, Any] = {"message": f"turn {turn}", "workflow": "summarize_then_answer"}
        if conversation_id:
            body["conversation_id"] = conversation_id
        response = await client.post("/api/v1/chat", json=body, headers=fresh.headers)
        assert response.status_code == 200, response.text
        conversation_id = response.json()["conversation"]["id"]
        executions.append(response.json()["execution"])
    # Up to 6 messages nothing is summarized; the fourth turn sees 7 and summarizes 1.
    assert [e["llm_call_count"] for e in executions] == [1, 1, 1, 2]
    assert all(e["workflow_name"] == "summarize_then_answer" for e in executions)
    assert executions[0]["definition_id"] is None
    first = await client.get(
        "/api/v1/workflows/executions", params={"limit": 3}, headers=fresh.headers
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["id"] for e in page["items"]] == [e["id"] for e in executions[::-1][:3]]
    rest = await client.get(
        "/api/v1/workflows/executions",
        params={"limit": 3, "cursor": page["next_cursor"]},
        headers=fresh.headers,
    )
    assert [e["id"] for e in rest.json()["items"]] == [executions[0]["id"]]
    since = await client.get(
        "/api/v1/workflows/executions",
        params={"since": executions[3]["started_at"]},
        headers=fresh.headers,
    )
    assert [e["id"] for e in since.json()["items"]] == [executions[3]["id"]]
    await assert_invariants(engine)


async def test_a_node_without_tools_after_tool_calls_declares_them_forbidden(
    client: httpx.AsyncClient, fresh: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    definition = tool_loop()
    definition["nodes"][3] = {"id": "finish", "type": "model", "config": {"tools": []}}
    definition_id = await create(client, fresh, definition)
    fake.enqueue(
        FakeReply(content="", tool_calls=calculator_call("6*7"), usage=usage(20, 4)),
        FakeReply(content="It is 42.", usage=usage(30, 3)),
        FakeReply(content="42.", usage=usage(40, 2)),
    )
    response = await execute(client, fresh, definition_id)
    assert response.status_code == 200, response.text
    assert response.json()["assistant_message"]["content"] == "42."
    last = fake.requests[-1]
    assert last["tool_choice"] == "none"
    assert [t["function"]["name"] for t in last["tools"]] == ["calculator"]
    assert response.json()["execution"]["llm_call_count"] == 3
    await assert_invariants(engine)

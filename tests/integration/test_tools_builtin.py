"""Built-in tools and the bounds of every tool call: conversation_search reads only the
caller's own messages; oversized arguments are refused without running the tool; reaching
the tool iteration limit is said on the execution, and the turn still completes."""

from __future__ import annotations

import json

import httpx
import pytest
from accounting import assert_invariants
from sqlalchemy.ext.asyncio import AsyncEngine
from tools_support import tool_events, tool_rows, tool_turn

from chatter.settings import Settings
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

MAX_ITERATIONS = 2


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url,
        fake_openai,
        llm={
            "demo_chunk_delay_s": 0.0,
            "max_retries": 0,
            "timeout_s": 10,
            "max_tool_iterations": MAX_ITERATIONS,
        },
        tools={"max_argument_chars": 1000, "search_max_results": 3},
    )


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def bob(make_user: UserFactory) -> Actor:
    return await make_user()


def calls(name: str, args: dict[str, object]) -> FakeReply:
    return FakeReply(content="", tool_calls=[{"name": name, "arguments": args}])


async def say(client: httpx.AsyncClient, user: Actor, text: str) -> None:
    response = await client.post("/api/v1/chat", json={"message": text}, headers=user.headers)
    assert response.status_code == 200, response.text


async def search(
    client: httpx.AsyncClient, user: Actor, fake: FakeOpenAIServer, **args: object
) -> list[dict[str, object]]:
    fake.enqueue(calls("conversation_search", args), FakeReply(content="Found."))
    body = await tool_turn(client, user, "Search my history")
    (message,) = body["tool_messages"]
    assert message["status"] == "complete", message
    hits: list[dict[str, object]] = json.loads(message["content"])
    return hits


async def test_conversation_search_sees_only_the_callers_messages(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    await say(client, alice, "My zebra is called Alice-Stripes")
    await say(client, bob, "My zebra is called Bob-Stripes")
    await say(client, bob, "Another ZEBRA note from bob, 100% private_data")
    alice_hits = await search(client, alice, fake, query="zebra")
    texts = [hit["text"] for hit in alice_hits]
    assert texts == ["My zebra is called Alice-Stripes"]
    bob_hits = await search(client, bob, fake, query="Zebra")
    assert sorted(str(hit["text"]) for hit in bob_hits) == [
        "Another ZEBRA note from bob, 100% private_data",
        "My zebra is called Bob-Stripes",
    ]
    # `%` and `_` are literal, not wildcards.
    assert len(await search(client, bob, fake, query="100% private_")) == 1
    assert await search(client, bob, fake, query="100%_private") == []
    # Whatever the model asks, at most CHATTER_TOOLS__SEARCH_MAX_RESULTS.
    for index in range(4):
        await say(client, alice, f"giraffe number {index}")
    assert len(await search(client, alice, fake, query="giraffe", limit=50)) == 3
    assert len(await search(client, alice, fake, query="giraffe", limit=2)) == 2
    await assert_invariants(engine)


async def test_oversized_arguments_are_refused_without_running_the_tool(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(calls("calculator", {"expression": "1+" * 1000 + "1"}), FakeReply(content="Ok."))
    body = await tool_turn(client, alice, "Big sum")
    assert body["execution"]["status"] == "completed"
    (row,) = await tool_rows(engine, body["execution"]["id"])
    assert row.status == "failed"
    assert row.error is not None
    assert row.error.startswith("arguments too large (")
    assert len(json.dumps(row.arguments)) < 200  # not stored either
    (event,) = await tool_events(engine, body["execution"]["id"])
    assert event["status"] == "error"
    await assert_invariants(engine)


async def test_reaching_the_iteration_limit_is_on_the_execution(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    # A model that asks for a tool every time, even when told to use none.
    fake.set_responder(lambda request: calls("calculator", {"expression": "2*3"}))
    body = await tool_turn(client, alice, "Loop forever")
    execution = body["execution"]
    assert execution["status"] == "completed"
    assert execution["llm_call_count"] == MAX_ITERATIONS + 1
    assert execution["error"] is not None
    assert execution["error"].startswith("Tool iteration limit reached: 2 model calls")
    assert body["assistant_message"]["status"] == "complete"
    assert body["assistant_message"]["error"] is None
    # The last call was told to use no tool; the tools it asked for anyway did not run.
    assert fake.requests[-1]["tool_choice"] == "none"
    assert len(body["tool_messages"]) == MAX_ITERATIONS
    detail = await client.get(f"/api/v1/executions/{execution['id']}", headers=alice.headers)
    assert detail.json()["error"] == execution["error"]
    # Below the limit nothing is said.
    fake.set_responder(None)
    fake.enqueue(calls("calculator", {"expression": "2*3"}), FakeReply(content="6"))
    assert (await tool_turn(client, alice, "Once"))["execution"]["error"] is None
    await assert_invariants(engine)

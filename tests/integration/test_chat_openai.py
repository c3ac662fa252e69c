"""Chat accounting over real HTTP against the local fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from accounting import assert_events_recorded, assert_invariants, assert_rollups_match
from fastapi import FastAPI
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from chatter.storage.models import LLMCall, Message, WorkflowExecution
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 120},
}


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai)


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


def genai_cost(prompt: int, cached: int, completion: int) -> Decimal:
    usage = PriceUsage(input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion)
    return Decimal(calc_price(usage, "gpt-4o-mini", provider_id="openai").total_price)


async def chat(client: httpx.AsyncClient, user: Actor, **body: object) -> httpx.Response:
    return await client.post("/api/v1/chat", json={"message": "Hi", **body}, headers=user.headers)


async def test_turn_stores_exactly_the_reported_usage(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(FakeReply(content="Hello from the fake.", usage=USAGE))
    response = await chat(client, alice, provider="openai", model="gpt-4o-mini")
    assert response.status_code == 200, response.text
    body = response.json()
    expected_cost = genai_cost(1200, 1000, 300)
    assistant = body["assistant_message"]
    assert assistant["content"] == "Hello from the fake."
    for item in (assistant, body["execution"], body["conversation"]):
        assert item["prompt_tokens"] == 1200
        assert item["completion_tokens"] == 300
        assert item["total_tokens"] == 1500
        assert item["cached_tokens"] == 1000
        assert item["reasoning_tokens"] == 120
    assert Decimal(assistant["cost"]) == expected_cost
    assert Decimal(body["execution"]["total_cost"]) == expected_cost
    assert Decimal(body["conversation"]["total_cost"]) == expected_cost
    assert assistant["usage_source"] == "provider"
    assert assistant["cost_known"] is True
    assert assistant["provider_used"] == "openai"
    assert assistant["model_used"] == "gpt-4o-mini"
    assert assistant["finish_reason"] == "stop"
    assert assistant["response_time_ms"] >= 0
    correlation_id = response.headers["x-correlation-id"]
    assert assistant["correlation_id"] == correlation_id
    assert body["execution"]["correlation_id"] == correlation_id
    assert assistant["workflow_execution_id"] == body["execution"]["id"]
    # The request asked for usage in the stream and carried our key.
    request = fake.requests[-1]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    detail = await client.get(
        f"/api/v1/executions/{body['execution']['id']}", headers=alice.headers
    )
    (call,) = detail.json()["llm_calls"]
    assert (call["prompt_tokens"], call["completion_tokens"], call["cached_tokens"]) == (
        1200,
        300,
        1000,
    )
    assert call["reasoning_tokens"] == 120
    assert Decimal(call["cost"]) == expected_cost
    assert call["price_source"] == "genai-prices"
    assert call["correlation_id"] == correlation_id
    assert call["status"] == "succeeded"
    await assert_invariants(engine)


async def test_tool_turn_records_both_calls(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    first = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    second = {
        "prompt_tokens": 80,
        "completion_tokens": 20,
        "total_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 40},
    }
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage=first,
        ),
        FakeReply(content="6*7 is 42.", usage=second),
    )
    response = await chat(client, alice, message="What is 6*7?", workflow="chat_with_tools")
    assert response.status_code == 200, response.text
    body = response.json()
    assistant = body["assistant_message"]
    assert assistant["content"] == "6*7 is 42."
    assert assistant["prompt_tokens"] == 130
    assert assistant["completion_tokens"] == 30
    assert assistant["cached_tokens"] == 40
    assert Decimal(assistant["cost"]) == genai_cost(50, 0, 10) + genai_cost(80, 40, 20)
    assert assistant["tool_calls"][0]["name"] == "calculator"
    (tool_message,) = body["tool_messages"]
    assert tool_message["content"] == "42"
    # The second request carried the tool result back to the model.
    tool_turn = fake.requests[-1]["messages"]
    assert tool_turn[-1]["role"] == "tool"
    assert tool_turn[-1]["content"] == "42"
    detail = (
        await client.get(f"/api/v1/executions/{body['execution']['id']}", headers=alice.headers)
    ).json()
    assert [c["total_tokens"] for c in detail["llm_calls"]] == [60, 100]
    assert detail["tool_calls"][0]["result"] == "42"
    assert detail["total_tokens"] == assistant["total_tokens"] == 160
    await assert_invariants(engine)


async def test_missing_usage_is_estimated(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.enqueue(FakeReply(content="No usage from me, sorry.", usage=None))
    response = await chat(client, alice, message="Tell me something")
    assert response.status_code == 200, response.text
    assistant = response.json()["assistant_message"]
    assert assistant["usage_source"] == "estimated"
    assert assistant["prompt_tokens"] > 0
    assert assistant["completion_tokens"] > 0
    assert assistant["total_tokens"] == assistant["prompt_tokens"] + assistant["completion_tokens"]


async def test_unknown_price_is_flagged(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.enqueue(FakeReply(content="hi"))
    response = await chat(client, alice, model="my-private-finetune-zz")
    assert response.status_code == 200, response.text
    assistant = response.json()["assistant_message"]
    assert assistant["cost_known"] is False
    assert Decimal(assistant["cost"]) == 0


async def test_concurrent_turns_keep_sequences_and_totals(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]
    fake.default_reply = FakeReply(content="concurrent reply", delay_s=0.01)
    responses = await asyncio.gather(
        *[
            chat(client, alice, message=f"turn {n}", conversation_id=conversation_id)
            for n in range(30)
        ]
    )
    assert [r.status_code for r in responses] == [200] * 30
    conversation = (
        await client.get(f"/api/v1/conversations/{conversation_id}", headers=alice.headers)
    ).json()
    assert conversation["message_count"] == 60
    assert conversation["total_tokens"] == 30 * 18
    await assert_invariants(engine)


async def test_failing_server_leaves_a_failed_execution(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]
    fake.enqueue(FakeReply(status=500, error_message="the model is on fire"))
    response = await chat(client, alice, conversation_id=conversation_id)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "provider_error"
    assert "the model is on fire" in error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    execution = (
        await client.get(
            f"/api/v1/executions/{error['details']['execution_id']}", headers=alice.headers
        )
    ).json()
    assert execution["status"] == "failed"
    assert "the model is on fire" in execution["error"]
    assert execution["total_tokens"] == 0
    conversation = (
        await client.get(f"/api/v1/conversations/{conversation_id}", headers=alice.headers)
    ).json()
    assert conversation["total_tokens"] == 0
    messages = (
        await client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=alice.headers)
    ).json()["items"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]
    await assert_invariants(engine)


async def test_failure_after_a_successful_call_counts_only_that_call(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "1+1"}}],
            usage={"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45},
        ),
        FakeReply(status=503, error_message="overloaded"),
    )
    response = await chat(client, alice, message="1+1?", workflow="chat_with_tools")
    assert response.status_code == 502
    conversation_id = response.json()["error"]["details"]["conversation_id"]
    conversation = (
        await client.get(f"/api/v1/conversations/{conversation_id}", headers=alice.headers)
    ).json()
    assert conversation["total_tokens"] == 45
    assert conversation["message_count"] == 3  # user, tool, assistant(error)
    await assert_invariants(engine)


async def test_timeout_is_a_provider_error(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, database_url: str
) -> None:
    from conftest import running_app

    fast = openai_settings(database_url, fake, llm={"timeout_s": 0.3, "max_retries": 0})
    fake.enqueue(FakeReply(content="too late", delay_s=2))
    async with running_app(fast) as (_, fast_client):
        response = await fast_client.post(
            "/api/v1/chat", json={"message": "hi"}, headers=alice.headers
        )
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "provider_error"


async def test_unknown_provider_and_model_answer_400(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await chat(client, alice, provider="nope")
    assert response.status_code == 400
    assert "openai" in response.json()["error"]["details"]["available"]
    response = await chat(client, alice, provider="demo", model="demo-999")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["available"] == ["demo-1"]
    response = await chat(client, alice, provider="anthropic")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "provider_not_configured"
    response = await chat(client, alice, workflow="nonexistent")
    assert response.status_code == 400
    assert "chat_with_tools" in response.json()["error"]["details"]["available"]


async def test_bad_input_writes_nothing(
    client: httpx.AsyncClient, alice: Actor, engine: AsyncEngine
) -> None:
    async with engine.connect() as connection:
        before = (await connection.execute(select(func.count(Message.id)))).scalar_one()
        calls_before = (await connection.execute(select(func.count(LLMCall.id)))).scalar_one()
    for body in (
        {"message": ""},
        {"message": "   "},
        {"message": "hi", "temperature": 5},
        {"message": "hi", "max_tokens": 0},
        {"message": "hi", "conversation_id": "does-not-exist"},
    ):
        response = await client.post("/api/v1/chat", json=body, headers=alice.headers)
        assert response.status_code in (404, 422), (body, response.text)
        assert "error" in response.json()
    async with engine.connect() as connection:
        after = (await connection.execute(select(func.count(Message.id)))).scalar_one()
        calls_after = (await connection.execute(select(func.count(LLMCall.id)))).scalar_one()
    assert (after, calls_after) == (before, calls_before)


async def test_providers_endpoint(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.get("/api/v1/providers", headers=alice.headers)
    assert response.status_code == 200
    providers = {p["name"]: p for p in response.json()}
    assert providers["demo"]["models"] == [{"name": "demo-1", "price_known": True}]
    assert providers["openai"]["configured"] is True
    assert providers["openai"]["models"][0]["price_known"] is True
    assert providers["anthropic"]["configured"] is False
    assert providers["openai"]["base_url"] is None  # internal hosts are for admins only


async def test_other_users_cannot_see_or_chat_into_a_conversation(
    client: httpx.AsyncClient, alice: Actor, make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    fake.enqueue(FakeReply(content="private"))
    body = (await chat(client, alice, message="my secret")).json()
    mallory = await make_user()
    execution = await client.get(
        f"/api/v1/executions/{body['execution']['id']}", headers=mallory.headers
    )
    assert execution.status_code == 404
    assert "my secret" not in execution.text
    response = await chat(
        client, mallory, message="let me in", conversation_id=body["conversation"]["id"]
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_options_reach_the_model_server(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.enqueue(FakeReply(content="ok"))
    response = await chat(client, alice, temperature=0.3, max_tokens=42, system_prompt="Be brief.")
    assert response.status_code == 200, response.text
    request = fake.requests[-1]
    assert request["temperature"] == 0.3
    assert request["max_tokens"] == 42
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request["messages"][-1]["content"] == "Hi"


async def test_odd_model_output_is_stored_not_a_500(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.enqueue(
        FakeReply(content="", tool_calls=[{"name": "t" * 200, "arguments": {"a": "b\x00c"}}]),
        FakeReply(content="ok\x00done", finish_reason="f" * 50),
    )
    response = await chat(client, alice, message="odd", workflow="chat_with_tools")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assistant_message"]["content"] == "okdone"
    assert len(body["assistant_message"]["finish_reason"]) == 32
    (tool_message,) = body["tool_messages"]
    assert tool_message["status"] == "error"
    await assert_invariants(engine)


async def test_unexpected_failure_is_recorded_and_reported(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    # A call that asks for a tool is stored before the tool runs: that write fails.
    monkeypatch.setattr(app.state.container.chat, "_record_call", broken)
    fake.enqueue(
        FakeReply(
            content="", tool_calls=[{"name": "calculator", "arguments": {"expression": "1+1"}}]
        ),
        FakeReply(content="never stored as complete"),
    )
    response = await chat(client, alice, message="boom", workflow="chat_with_tools")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "disk on fire" not in response.text
    execution = (
        await client.get(
            f"/api/v1/executions/{error['details']['execution_id']}", headers=alice.headers
        )
    ).json()
    assert execution["status"] == "failed"
    assert execution["llm_call_count"] == 1  # the answered call is on record all the same
    await assert_invariants(engine)


async def test_a_close_that_fails_still_stores_the_last_call(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A turn's last call is written by its close; when the close fails, the fallback that
    closes the execution as failed stores that call all the same."""
    closer = app.state.container.chat._closer

    async def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(closer, "_close", broken)
    fake.enqueue(FakeReply(content="answered, then the close failed"))
    response = await chat(client, alice, message="boom")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    async with engine.connect() as connection:
        execution = (
            await connection.execute(
                select(WorkflowExecution).where(
                    WorkflowExecution.correlation_id == response.headers["x-correlation-id"]
                )
            )
        ).one()
    assert execution.status == "failed"
    assert execution.llm_call_count == 1
    assert execution.total_tokens == 18
    await assert_events_recorded(engine)
    await assert_rollups_match(engine)


async def test_nul_characters_are_refused_everywhere(
    client: httpx.AsyncClient, alice: Actor, engine: AsyncEngine
) -> None:
    for path, body in (
        ("/api/v1/chat", {"message": "a\x00b"}),
        ("/api/v1/chat", {"message": "hi", "model": "gpt-4o-mini\x00"}),
        ("/api/v1/conversations", {"title": "t\x00"}),
        ("/api/v1/auth/login", {"email": "a\x00@example.com", "password": "x"}),
    ):
        response = await client.post(path, json=body, headers=alice.headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    for path in ("/api/v1/conversations/%00", "/api/v1/executions/%00x"):
        response = await client.get(path, headers=alice.headers)
        assert response.status_code == 404, path
    response = await client.get(
        "/api/v1/conversations",
        params={"cursor": "WyIyMDI2IiwgIlx1MDAwMCJd"},
        headers=alice.headers,
    )
    assert response.status_code == 400
    await assert_invariants(engine)

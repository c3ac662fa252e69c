"""MCP tool servers end to end: an MCP server written here with the `mcp` package, registered
through the API by an admin; a `chat_with_tools` turn against the fake OpenAI server calls its
tools. Each call is recorded (tool_calls row), evented (`tool_called`) and traced (the trace
route and an OpenTelemetry span); a tool that raises or hangs becomes an error result and the
turn completes with its accounting intact."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from accounting import assert_invariants
from events_support import make_admin
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine
from tools_support import (
    offered_tools,
    register_server,
    tool_events,
    tool_rows,
    tool_turn,
    traced_tools,
)

from chatter.app import create_app
from chatter.observability.telemetry import Telemetry
from chatter.observability.tracing import Tracing
from chatter.settings import Settings
from conftest import Actor, UserFactory, openai_settings, running_app
from fakes.mcp_server import FakeMCPServer
from fakes.openai_server import FakeOpenAIServer, FakeReply

STDIO_SCRIPT = Path(__file__).parent.parent / "fakes" / "mcp_stdio_server.py"
TOOL_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[FakeMCPServer]:
    with FakeMCPServer() as server:
        yield server


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url,
        fake_openai,
        tools={
            "timeout_s": TOOL_TIMEOUT_S,
            "max_result_chars": 500,
            "load_timeout_s": 5,
            "stdio_allowed_commands": [sys.executable],
        },
    )


@pytest.fixture(scope="module")
async def app_and_client(
    settings: Settings, exporter: InMemorySpanExporter
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The module's app, with its spans kept in memory."""
    app = create_app(settings, telemetry=Telemetry(tracing=Tracing.to_exporter(exporter)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatter.test") as client:
            yield app, client


@pytest.fixture(scope="module")
async def admin(make_user: UserFactory, engine: AsyncEngine) -> Actor:
    actor = await make_user()
    await make_admin(engine, actor.id)
    return actor


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def registered(
    client: httpx.AsyncClient, admin: Actor, mcp_server: FakeMCPServer
) -> dict[str, object]:
    response = await register_server(
        client, admin, name="fake", transport="streamable_http", url=mcp_server.url
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def calls(*specs: tuple[str, dict[str, object]]) -> FakeReply:
    return FakeReply(
        content="",
        tool_calls=[{"name": name, "arguments": args} for name, args in specs],
        usage={"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48},
    )


ANSWER = FakeReply(
    content="Done.", usage={"prompt_tokens": 60, "completion_tokens": 4, "total_tokens": 64}
)


async def test_registering_lists_the_servers_tools(
    client: httpx.AsyncClient, admin: Actor, registered: dict[str, object]
) -> None:
    assert registered["status"] == "available"
    assert registered["error"] is None
    assert registered["tools"] == ["fake__add", "fake__explode", "fake__hang", "fake__long_text"]
    listed = await client.get("/api/v1/tool-servers", headers=admin.headers)
    assert listed.status_code == 200
    (server,) = [s for s in listed.json() if s["name"] == "fake"]
    assert server["tools"] == registered["tools"]
    assert server["transport"] == "streamable_http"


async def test_an_mcp_tool_call_is_recorded_evented_and_traced(
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    registered: dict[str, object],
    engine: AsyncEngine,
    exporter: InMemorySpanExporter,
    mcp_server: FakeMCPServer,
) -> None:
    fake.enqueue(calls(("fake__add", {"a": 2, "b": 3})), ANSWER)
    body = await tool_turn(client, alice, "What is 2+3?")
    assert body["assistant_message"]["content"] == "Done."
    (tool_message,) = body["tool_messages"]
    assert tool_message["content"] == "5"
    assert tool_message["status"] == "complete"
    # Both model requests offered the MCP tool next to the built-ins; the second carried
    # its result back.
    first, second = fake.requests
    assert {"fake__add", "calculator", "current_time", "conversation_search"} <= offered_tools(
        first
    )
    assert second["messages"][-1] == {
        "role": "tool",
        "content": "5",
        "tool_call_id": second["messages"][-2]["tool_calls"][0]["id"],
    }
    # Accounting: the execution is the sum of its two calls, the message carries it.
    execution = body["execution"]
    assert execution["llm_call_count"] == 2
    assert execution["total_tokens"] == body["assistant_message"]["total_tokens"] == 48 + 64
    # Recorded, evented, traced.
    (row,) = await tool_rows(engine, execution["id"])
    assert (row.name, row.status, row.result, row.error) == ("fake__add", "succeeded", "5", None)
    assert row.arguments == {"a": 2, "b": 3}
    (event,) = await tool_events(engine, execution["id"])
    assert (event["name"], event["status"], event["result"]) == ("fake__add", "ok", "5")
    (traced,) = await traced_tools(client, alice, execution["correlation_id"])
    assert (traced["name"], traced["status"]) == ("fake__add", "succeeded")
    spans = [s for s in exporter.get_finished_spans() if s.name == "execute_tool fake__add"]
    assert spans
    assert spans[-1].attributes is not None
    assert spans[-1].attributes["gen_ai.tool.call.id"] == row.tool_call_id
    await assert_invariants(engine)


async def test_turns_do_not_list_the_servers_tools(
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    registered: dict[str, object],
    mcp_server: FakeMCPServer,
) -> None:
    # (Calling an MCP tool lists tools inside the call's own session - the SDK checks the
    # result against the tool's output schema - so these turns call a built-in.)
    lists_before = mcp_server.list_requests
    for _ in range(2):
        fake.enqueue(calls(("calculator", {"expression": "1+1"})), ANSWER)
        body = await tool_turn(client, alice, "Cached?")
        assert "fake__add" in offered_tools(fake.requests[-2])
        assert body["tool_messages"][0]["content"] == "2"
    assert mcp_server.list_requests == lists_before


async def test_raising_and_hanging_tools_become_error_results(
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    registered: dict[str, object],
    engine: AsyncEngine,
    exporter: InMemorySpanExporter,
) -> None:
    fake.enqueue(calls(("fake__explode", {}), ("fake__hang", {"seconds": 60})), ANSWER)
    started = time.monotonic()
    body = await tool_turn(client, alice, "Try the risky tools")
    assert time.monotonic() - started < 10  # the hanging tool was cut at its timeout
    assert body["execution"]["status"] == "completed"
    assert body["assistant_message"]["content"] == "Done."
    assert [m["status"] for m in body["tool_messages"]] == ["error", "error"]
    explode, hang = await tool_rows(engine, body["execution"]["id"])
    assert explode.status == hang.status == "failed"
    assert explode.error is not None
    assert "exploded: kaboom" in explode.error
    assert hang.error == f"the tool did not answer within {TOOL_TIMEOUT_S:g} s"
    assert hang.latency_ms >= TOOL_TIMEOUT_S * 1000 * 0.9
    # The model was told, as error results.
    results = [m for m in fake.requests[-1]["messages"] if m["role"] == "tool"]
    assert [r["content"].startswith("Error: ") for r in results] == [True, True]
    events = await tool_events(engine, body["execution"]["id"])
    assert [(e["name"], e["status"]) for e in events] == [
        ("fake__explode", "error"),
        ("fake__hang", "error"),
    ]
    assert "exploded" in events[0]["error"]
    traced = await traced_tools(client, alice, body["execution"]["correlation_id"])
    assert [(t["status"], t["error"] is not None) for t in traced] == [("failed", True)] * 2
    span = [s for s in exporter.get_finished_spans() if s.name == "execute_tool fake__hang"][-1]
    assert span.status.status_code is StatusCode.ERROR
    await assert_invariants(engine)


async def test_long_results_are_truncated(
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    registered: dict[str, object],
    engine: AsyncEngine,
) -> None:
    fake.enqueue(calls(("fake__long_text", {"size": 5000})), ANSWER)
    body = await tool_turn(client, alice, "Long please")
    (row,) = await tool_rows(engine, body["execution"]["id"])
    assert row.status == "succeeded"
    assert len(row.result) <= 500
    assert row.result.endswith("of 5000 characters]")
    tool_result = next(m for m in fake.requests[-1]["messages"] if m["role"] == "tool")
    assert tool_result["content"] == row.result == body["tool_messages"][0]["content"]


async def test_another_worker_uses_a_server_registered_here(
    settings: Settings,
    alice: Actor,
    fake: FakeOpenAIServer,
    registered: dict[str, object],
) -> None:
    async with running_app(settings) as (_, other):
        fake.enqueue(calls(("fake__add", {"a": 20, "b": 22})), ANSWER)
        body = await tool_turn(other, alice, "On the other worker")
    assert body["tool_messages"][0]["content"] == "42"


async def test_a_stdio_server_from_the_allow_list(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    response = await register_server(
        client,
        admin,
        name="local-stdio",
        transport="stdio",
        command=sys.executable,
        args=[str(STDIO_SCRIPT)],
        timeout_s=30,  # its own bound: each call starts a Python process
    )
    assert response.status_code == 201, response.text
    assert response.json()["tools"] == ["local-stdio__shout"]
    fake.enqueue(calls(("local-stdio__shout", {"text": "hello"})), ANSWER)
    body = await tool_turn(client, alice, "Shout")
    assert body["tool_messages"][0]["content"] == "HELLO"
    deleted = await client.delete("/api/v1/tool-servers/local-stdio", headers=admin.headers)
    assert deleted.status_code == 204
    await assert_invariants(engine)


async def test_a_server_that_is_down_leaves_other_tools_working(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, fake: FakeOpenAIServer
) -> None:
    with FakeMCPServer() as gone:
        url = gone.url  # a port nothing listens on once it stopped
    response = await register_server(
        client, admin, name="down", transport="streamable_http", url=url
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "unavailable"
    assert response.json()["tools"] == []
    assert response.json()["error"]
    fake.enqueue(calls(("calculator", {"expression": "6*7"})), ANSWER)
    body = await tool_turn(client, alice, "Still fine?")
    assert body["tool_messages"][0]["content"] == "42"
    assert not any(name.startswith("down__") for name in offered_tools(fake.requests[0]))
    deleted = await client.delete("/api/v1/tool-servers/down", headers=admin.headers)
    assert deleted.status_code == 204


async def test_a_failed_call_is_streamed_with_its_error(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, registered: dict[str, object]
) -> None:
    fake.enqueue(calls(("fake__explode", {"reason": "streamed"})), ANSWER)
    response = await client.post(
        "/api/v1/chat/stream",
        json={"message": "Stream it", "workflow": "chat_with_tools"},
        headers=alice.headers,
    )
    assert response.status_code == 200
    frames = [frame.split("\n") for frame in response.text.replace("\r\n", "\n").split("\n\n")]
    results = [
        json.loads(line.removeprefix("data: "))
        for frame in frames
        if "event: tool_result" in frame
        for line in frame
        if line.startswith("data: ")
    ]
    assert [(r["name"], r["status"]) for r in results] == [("fake__explode", "failed")]
    assert "exploded: streamed" in results[0]["error"]
    assert results[0]["result"].startswith("Error: ")
    assert any("event: done" in frame for frame in frames)


async def test_deleting_a_server_removes_its_tools(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    fake: FakeOpenAIServer,
    registered: dict[str, object],
    engine: AsyncEngine,
) -> None:
    deleted = await client.delete("/api/v1/tool-servers/fake", headers=admin.headers)
    assert deleted.status_code == 204
    listed = await client.get("/api/v1/tool-servers", headers=admin.headers)
    assert "fake" not in [s["name"] for s in listed.json()]
    fake.enqueue(calls(("fake__add", {"a": 1, "b": 1})), ANSWER)
    body = await tool_turn(client, alice, "Add again")
    assert not any(name.startswith("fake__") for name in offered_tools(fake.requests[0]))
    (row,) = await tool_rows(engine, body["execution"]["id"])
    assert (row.status, row.error) == ("failed", "unknown tool 'fake__add'")
    again = await client.delete("/api/v1/tool-servers/fake", headers=admin.headers)
    assert again.status_code == 404
    await assert_invariants(engine)

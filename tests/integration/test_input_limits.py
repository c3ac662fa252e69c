"""Input limits from settings, each refused in the error shape before any work: the body's
size (before it is read in full), the headers' count and size (against a real uvicorn),
text lengths, page sizes and tool arguments."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from chatter.api.request_limits import h11_header_limit
from chatter.app import create_app
from chatter.settings import Settings
from conftest import UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

LIMITS = {
    "max_body_bytes": 64 * 1024,
    "max_header_count": 50,
    "max_header_bytes": 8 * 1024,
    "max_message_chars": 50,
    "max_title_chars": 20,
    "max_system_prompt_chars": 30,
    "max_page_size": 10,
}


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url, fake_openai, limits=LIMITS, tools={"max_argument_chars": 100}
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["correlation_id"] == response.headers["X-Correlation-ID"]
    return error


async def test_text_lengths_are_refused_before_the_turn(
    client: httpx.AsyncClient, make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    user = await make_user()
    cases = [
        ("/api/v1/chat", {"message": "x" * 51}, "message"),
        ("/api/v1/chat", {"message": "hi", "system_prompt": "s" * 31}, "system_prompt"),
        ("/api/v1/chat/stream", {"message": "x" * 51}, "message"),
        ("/api/v1/conversations", {"title": "t" * 21}, "title"),
        ("/api/v1/conversations", {"default_system_prompt": "s" * 31}, "default_system_prompt"),
    ]
    for path, body, field in cases:
        response = await client.post(path, json=body, headers=user.headers)
        error = assert_error(response, 422, "validation_error")
        assert error["details"] == [
            {"loc": ["body", field], "msg": error["details"][0]["msg"], "type": "string_too_long"}
        ], path
    created = await client.post(
        "/api/v1/conversations", json={"title": "t" * 20}, headers=user.headers
    )
    assert created.status_code == 201
    patched = await client.patch(
        f"/api/v1/conversations/{created.json()['id']}",
        json={"title": "t" * 21},
        headers=user.headers,
    )
    assert_error(patched, 422, "validation_error")
    # Nothing was done for the refused ones: no model call, one conversation (the valid one).
    assert fake.requests == []
    listed = await client.get("/api/v1/conversations", headers=user.headers)
    assert [c["title"] for c in listed.json()["items"]] == ["t" * 20]
    assert (
        await client.post("/api/v1/chat", json={"message": "x" * 50}, headers=user.headers)
    ).status_code == 200


async def test_page_sizes_follow_the_setting(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    for path in ("/api/v1/conversations", "/api/v1/events/history", "/api/v1/monitoring/workflows"):
        assert (
            await client.get(path, params={"limit": 10}, headers=user.headers)
        ).status_code == 200
        error = assert_error(
            await client.get(path, params={"limit": 11}, headers=user.headers),
            422,
            "validation_error",
        )
        assert error["details"][0]["loc"] == ["query", "limit"]


async def test_the_document_states_the_configured_limits(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert schemas["ChatIn"]["properties"]["message"]["maxLength"] == 50
    assert schemas["ChatIn"]["properties"]["system_prompt"]["anyOf"][0]["maxLength"] == 30
    assert schemas["ConversationCreateIn"]["properties"]["title"]["anyOf"][0]["maxLength"] == 20
    params = document["paths"]["/api/v1/conversations"]["get"]["parameters"]
    (limit,) = [p for p in params if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == 10
    assert "x-chatter-limit" not in json.dumps(document)
    assert "413" in document["paths"]["/api/v1/chat"]["post"]["responses"]


async def test_a_declared_large_body_is_refused_unread(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    body = json.dumps({"message": "x" * (65 * 1024)})
    response = await client.post(
        "/api/v1/chat", content=body, headers={**user.headers, "Content-Type": "application/json"}
    )
    error = assert_error(response, 413, "payload_too_large")
    assert "65536" in error["message"]
    # No credentials needed to be refused: nothing is read or parsed first.
    anonymous = await client.post("/api/v1/auth/login", content=body)
    assert_error(anonymous, 413, "payload_too_large")


async def test_a_streamed_body_is_refused_once_over_the_limit(client: httpx.AsyncClient) -> None:
    """50 MB sent chunked (no Content-Length): refused after the first chunks past 64 KiB,
    without reading the rest."""
    chunk = b"x" * (16 * 1024)
    sent = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(50 * 64):
            sent += len(chunk)
            yield chunk

    response = await client.post(
        "/api/v1/auth/register",
        content=fifty_megabytes(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")
    assert sent <= 128 * 1024


async def test_tool_arguments_over_the_limit_are_not_run(
    client: httpx.AsyncClient, make_user: UserFactory, fake: FakeOpenAIServer
) -> None:
    user = await make_user()
    huge = {"expression": "1+" * 200 + "1"}
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"id": "call_1", "name": "calculator", "arguments": json.dumps(huge)}],
        ),
        FakeReply(content="That was too long."),
    )
    response = await client.post(
        "/api/v1/chat",
        json={"message": "calc", "workflow": "chat_with_tools"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    (tool,) = response.json()["tool_messages"]
    assert "at most 100" in tool["content"]
    execution = await client.get(
        f"/api/v1/executions/{response.json()['execution']['id']}", headers=user.headers
    )
    (call,) = execution.json()["tool_calls"]
    assert call["status"] == "failed"
    assert call["arguments"] == {
        "_omitted": f"{len(json.dumps(huge))} characters of arguments, over the limit"
    }


async def _serve(
    app: FastAPI, settings: Settings, http: str
) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        http=http,  # type: ignore[arg-type]
        # As `chatter serve` sets it.
        h11_max_incomplete_event_size=h11_header_limit(settings.limits),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_header_limits_against_a_real_server(settings: Settings, http: str) -> None:
    server, task, url = await _serve(create_app(settings), settings, http)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/healthz")).status_code == 200
            many = [(f"x-h{i}", "1") for i in range(5000)]
            assert_error(await client.get("/healthz", headers=many), 431, "headers_too_large")
            big = {"x-big": "b" * (9 * 1024)}
            assert_error(await client.get("/healthz", headers=big), 431, "headers_too_large")
            huge = {"x-huge": "h" * (20 * 1024 * 1024)}
            try:
                refused = await client.get("/healthz", headers=huge)
            except httpx.HTTPError:  # h11 may close the connection mid-send
                return
            if http == "httptools":
                assert_error(refused, 431, "headers_too_large")
            else:  # h11 refuses it itself, before it is buffered: never a 200
                assert refused.status_code in (400, 431)
    finally:
        server.should_exit = True
        await task

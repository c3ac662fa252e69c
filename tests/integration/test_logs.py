"""Structured logs (JSON mode): one line per request and one per model call, with the fields
an operator filters on, and never a message's content or a key."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chatter.app import create_app
from conftest import openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

PROVIDER_KEY = "sk-provider-key-never-logged-123"
QUESTION = "my private question xyzzy"
ANSWER = "a private answer plugh"


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_request_and_model_call_lines_carry_their_fields_and_no_content(
    database_url: str, fake_openai: FakeOpenAIServer, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = openai_settings(database_url, fake_openai, log_json=True).model_copy(
        update={"openai_api_key": SecretStr(PROVIDER_KEY)}
    )
    fake_openai.reset()
    fake_openai.enqueue(FakeReply(content=ANSWER))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatter.test") as client:
            credentials = {"email": "logs@example.com", "password": "correct horse battery"}
            user_id = (await client.post("/api/v1/auth/register", json=credentials)).json()["id"]
            login = await client.post("/api/v1/auth/login", json=credentials)
            token = login.json()["access_token"]
            response = await client.post(
                "/api/v1/chat",
                json={"message": QUESTION},
                headers={"Authorization": f"Bearer {token}", "X-Correlation-ID": "logs-turn-1"},
            )
            assert response.status_code == 200, response.text
    out = capfd.readouterr()
    text = out.out + out.err
    for secret in (QUESTION, "xyzzy", ANSWER, "plugh", PROVIDER_KEY, token, "correct horse"):
        assert secret not in text
    lines = json_lines(text)

    (request,) = [
        line for line in lines if line["event"] == "request" and line["route"] == "/api/v1/chat"
    ]
    assert request["method"] == "POST"
    assert request["status"] == 200
    assert request["duration_ms"] >= 0
    assert request["correlation_id"] == "logs-turn-1"
    assert request["user_id"] == user_id
    assert request["level"] == "info"

    (call,) = [line for line in lines if line["event"] == "llm_call"]
    body = response.json()
    assistant = body["assistant_message"]
    assert call["correlation_id"] == "logs-turn-1"
    assert call["user_id"] == user_id
    assert call["execution_id"] == body["execution"]["id"]
    assert call["provider"] == "openai"
    assert call["model"] == "gpt-4o-mini"
    assert call["prompt_tokens"] == assistant["prompt_tokens"]
    assert call["completion_tokens"] == assistant["completion_tokens"]
    assert call["total_tokens"] == assistant["total_tokens"]
    assert Decimal(call["cost"]) == Decimal(assistant["cost"])
    assert call["latency_ms"] >= 0

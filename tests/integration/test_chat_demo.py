"""Chat turns with the offline demo model: the out-of-the-box experience."""

from __future__ import annotations

from decimal import Decimal

import httpx

from conftest import UserFactory


async def test_demo_turn_records_usage(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    user = await make_user()
    response = await client.post(
        "/api/v1/chat", json={"message": "Hello there!"}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assistant = body["assistant_message"]
    assert assistant["role"] == "assistant"
    assert assistant["status"] == "complete"
    assert assistant["content"]
    assert assistant["prompt_tokens"] > 0
    assert assistant["completion_tokens"] > 0
    assert assistant["total_tokens"] == assistant["prompt_tokens"] + assistant["completion_tokens"]
    assert assistant["usage_source"] == "provider"
    assert assistant["provider_used"] == "demo"
    assert assistant["model_used"] == "demo-1"
    assert assistant["cost_known"] is True
    assert Decimal(assistant["cost"]) == 0
    assert body["execution"]["status"] == "completed"
    assert body["execution"]["total_tokens"] == assistant["total_tokens"]
    conversation = body["conversation"]
    assert conversation["message_count"] == 2
    assert conversation["total_tokens"] == assistant["total_tokens"]
    assert body["user_message"]["sequence"] == 1
    assert assistant["sequence"] == 2


async def test_demo_tool_turn(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    user = await make_user()
    response = await client.post(
        "/api/v1/chat",
        json={"message": "What is 12*(3+4)?", "workflow": "chat_with_tools"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "84" in body["assistant_message"]["content"]
    assert len(body["tool_messages"]) == 1
    assert body["tool_messages"][0]["content"] == "84"
    execution = await client.get(
        f"/api/v1/executions/{body['execution']['id']}", headers=user.headers
    )
    detail = execution.json()
    assert len(detail["llm_calls"]) == 2
    assert len(detail["tool_calls"]) == 1
    assert sum(c["total_tokens"] for c in detail["llm_calls"]) == detail["total_tokens"]
    assert body["assistant_message"]["total_tokens"] == detail["total_tokens"]
    # A follow-up turn sees the tool history and still works.
    follow = await client.post(
        "/api/v1/chat",
        json={"message": "Thanks!", "conversation_id": body["conversation"]["id"]},
        headers=user.headers,
    )
    assert follow.status_code == 200, follow.text
    assert follow.json()["conversation"]["message_count"] == 5

"""Definitions and helpers shared by the workflow-definition tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.storage.models import LLMCall
from conftest import Actor

DEFINITIONS = "/api/v1/workflows/definitions"


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def three_models() -> dict[str, Any]:
    return {
        "name": "three_models",
        "description": "draft, critique, answer",
        "nodes": [
            {"id": "draft", "type": "model", "config": {"system_prompt": "Draft an answer."}},
            {"id": "critique", "type": "model", "config": {"system_prompt": "Critique it."}},
            {"id": "answer", "type": "model", "config": {"temperature": 0.2}},
        ],
        "edges": [
            {"source": "draft", "target": "critique"},
            {"source": "critique", "target": "answer"},
        ],
        "entry": "draft",
    }


def tool_loop(max_iterations: int | None = None) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "name": "tool_loop",
        "nodes": [
            {"id": "think", "type": "model", "config": {"tools": ["calculator"]}},
            {
                "id": "route",
                "type": "conditional",
                "config": {
                    "branches": [{"label": "act", "when": {"check": "has_tool_calls"}}],
                    "default": "finish",
                },
            },
            {"id": "act", "type": "tools"},
            {"id": "finish", "type": "end"},
        ],
        "edges": [
            {"source": "think", "target": "route"},
            {"source": "route", "target": "act", "condition": "act"},
            {"source": "route", "target": "finish", "condition": "finish"},
            {"source": "act", "target": "think"},
        ],
        "entry": "think",
    }
    if max_iterations is not None:
        definition["max_iterations"] = max_iterations
    return definition


def with_memory() -> dict[str, Any]:
    return {
        "name": "remember_briefly",
        "nodes": [
            {"id": "memory", "type": "memory", "config": {"keep_last": 2, "summarize": True}},
            {"id": "model", "type": "model"},
        ],
        "edges": [{"source": "memory", "target": "model"}],
        "entry": "memory",
    }


async def create(client: httpx.AsyncClient, user: Actor, definition: dict[str, Any]) -> str:
    response = await client.post(DEFINITIONS, json=definition, headers=user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1
    return str(body["id"])


async def execute(
    client: httpx.AsyncClient, user: Actor, definition_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{DEFINITIONS}/{definition_id}/execute",
        json={"input": "Hi", **body},
        headers=user.headers,
    )


def calculator_call(expression: str) -> list[dict[str, Any]]:
    return [{"name": "calculator", "arguments": {"expression": expression}}]


async def calls_of(engine: AsyncEngine, execution_id: str) -> list[Any]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(LLMCall).where(LLMCall.execution_id == execution_id).order_by(LLMCall.created_at)
        )
        return list(rows.all())

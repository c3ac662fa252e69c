"""Workflow definitions over the API: validation with every problem located, versions,
soft delete, templates and node types, and another user's definition a 404 everywhere."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from workflow_support import DEFINITIONS, create, execute, three_models, tool_loop, usage

from chatter.settings import Settings
from chatter.storage.models import Event
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai)


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def bob(make_user: UserFactory) -> Actor:
    return await make_user()


def broken() -> dict[str, Any]:
    return {
        "name": "broken",
        "nodes": [
            {"id": "a", "type": "model", "config": {"temperature": 7, "tools": ["nope"]}},
            {"id": "b", "type": "teleport"},
            {"id": "a", "type": "end"},
            {"id": "c", "type": "model", "config": {"provider": "nowhere"}},
            {"id": "d", "type": "model", "config": {"provider": "demo", "model": "gpt-9"}},
            {"id": "e", "type": "variable", "config": {}},
            {"id": "loop1", "type": "model"},
            {"id": "loop2", "type": "model"},
        ],
        "edges": [
            {"source": "a", "target": "ghost"},
            {"source": "phantom", "target": "a"},
            {"source": "a", "target": "loop1"},
            {"source": "loop1", "target": "loop2"},
            {"source": "loop2", "target": "loop1"},
        ],
        "entry": "a",
    }


EXPECTED = {
    ("nodes[0].config.temperature", "invalid_config"),
    ("nodes[0].config.tools[0]", "unknown_tool"),
    ("nodes[1].type", "unknown_node_type"),
    ("nodes[2].id", "duplicate_id"),
    ("nodes[3].config.provider", "unknown_provider"),
    ("nodes[4].config.model", "unknown_model"),
    ("nodes[5].config.name", "invalid_config"),
    ("edges[0].target", "unknown_edge_target"),
    ("edges[1].source", "unknown_edge_source"),
    ("edges[2]", "multiple_edges"),
    ("nodes[1]", "unreachable_node"),
    ("nodes[3]", "unreachable_node"),
    ("nodes[4]", "unreachable_node"),
    ("nodes[5]", "unreachable_node"),
    ("nodes[6]", "cycle_without_exit"),
    ("nodes[7]", "cycle_without_exit"),
}


async def test_every_problem_is_listed_with_its_location(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await client.post(DEFINITIONS, json=broken(), headers=alice.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_workflow"
    found = {(p["location"], p["code"]) for p in error["details"]}
    assert found == EXPECTED, found ^ EXPECTED
    by_location = {p["location"]: p for p in error["details"]}
    assert by_location["nodes[3].config.provider"]["node_id"] == "c"
    checked = await client.post(f"{DEFINITIONS}/validate", json=broken(), headers=alice.headers)
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is False
    assert {(p["location"], p["code"]) for p in checked.json()["problems"]} == EXPECTED
    listed = await client.get(DEFINITIONS, headers=alice.headers)
    assert "broken" not in [d["definition"]["name"] for d in listed.json()["items"]]


async def test_a_bad_entry_and_conditional_edges(client: httpx.AsyncClient, alice: Actor) -> None:
    definition = tool_loop()
    definition["entry"] = "nowhere"
    definition["edges"][1]["condition"] = "jump"
    definition["edges"].append({"source": "act", "target": "finish", "condition": "x"})
    response = await client.post(f"{DEFINITIONS}/validate", json=definition, headers=alice.headers)
    problems = {(p["location"], p["code"]) for p in response.json()["problems"]}
    assert problems == {
        ("entry", "bad_entry"),
        ("edges[1].condition", "unknown_condition"),
        ("edges[4].condition", "unexpected_condition"),
    }
    valid = await client.post(f"{DEFINITIONS}/validate", json=tool_loop(), headers=alice.headers)
    assert valid.json() == {"valid": True, "problems": []}


async def test_node_types_and_templates(client: httpx.AsyncClient, alice: Actor) -> None:
    types = await client.get("/api/v1/workflows/node-types", headers=alice.headers)
    assert types.status_code == 200
    by_type = {t["type"]: t["config_schema"] for t in types.json()}
    assert set(by_type) == {"model", "tools", "memory", "conditional", "variable", "end"}
    assert {"provider", "model", "temperature", "tools"} <= set(by_type["model"]["properties"])
    templates = await client.get("/api/v1/workflows/templates", headers=alice.headers)
    names = {t["name"] for t in templates.json()}
    assert {"chat", "chat_with_tools", "summarize_then_answer"} <= names
    for template in templates.json():
        checked = await client.post(
            f"{DEFINITIONS}/validate", json=template["definition"], headers=alice.headers
        )
        assert checked.json()["valid"], (template["name"], checked.json())


async def test_versions_survive_updates_and_delete(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.set_responder(lambda request: FakeReply(content="ok", usage=usage(5, 1)))
    definition_id = await create(client, alice, three_models())
    first = await execute(client, alice, definition_id)
    assert first.json()["execution"]["definition_version"] == 1
    changed = {**three_models(), "name": "two_models"}
    changed["nodes"] = changed["nodes"][:2]
    changed["edges"] = changed["edges"][:1]
    updated = await client.put(
        f"{DEFINITIONS}/{definition_id}", json=changed, headers=alice.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == updated.json()["current_version"] == 2
    second = await execute(client, alice, definition_id)
    assert second.json()["execution"]["definition_version"] == 2
    assert second.json()["execution"]["llm_call_count"] == 2
    old = await client.get(f"{DEFINITIONS}/{definition_id}/versions/1", headers=alice.headers)
    assert old.status_code == 200
    assert old.json()["definition"]["name"] == "three_models"
    assert len(old.json()["definition"]["nodes"]) == 3
    deleted = await client.delete(f"{DEFINITIONS}/{definition_id}", headers=alice.headers)
    assert deleted.status_code == 204
    assert (
        await client.get(f"{DEFINITIONS}/{definition_id}", headers=alice.headers)
    ).status_code == 404
    assert (await execute(client, alice, definition_id)).status_code == 404
    for version in (1, 2):
        kept = await client.get(
            f"{DEFINITIONS}/{definition_id}/versions/{version}", headers=alice.headers
        )
        assert kept.status_code == 200, kept.text
        assert kept.json()["deleted"] is True
    listed = await client.get(DEFINITIONS, headers=alice.headers)
    assert definition_id not in [d["id"] for d in listed.json()["items"]]


async def test_another_users_definition_is_a_404_everywhere(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, engine: AsyncEngine
) -> None:
    definition_id = await create(client, alice, three_models())
    path = f"{DEFINITIONS}/{definition_id}"
    attempts = [
        client.get(path, headers=bob.headers),
        client.put(path, json=three_models(), headers=bob.headers),
        client.delete(path, headers=bob.headers),
        client.get(f"{path}/versions/1", headers=bob.headers),
        client.post(f"{path}/execute", json={"input": "Hi"}, headers=bob.headers),
        client.post(f"{path}/execute/stream", json={"input": "Hi"}, headers=bob.headers),
        client.post(
            "/api/v1/chat", json={"message": "Hi", "workflow": definition_id}, headers=bob.headers
        ),
        client.post(
            "/api/v1/chat/stream",
            json={"message": "Hi", "workflow": definition_id},
            headers=bob.headers,
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, (response.request.url, response.text)
    history = await client.get(
        "/api/v1/workflows/executions",
        params={"definition_id": definition_id},
        headers=bob.headers,
    )
    assert history.json()["items"] == []
    mine = await client.get(path, headers=alice.headers)
    assert mine.status_code == 200
    async with engine.connect() as connection:
        denied = (
            await connection.execute(select(Event.data).where(Event.type == "access_denied"))
        ).all()
    on_record = [row.data for row in denied if row.data["id"] == definition_id]
    assert len(on_record) == len(attempts)
    assert {d["resource"] for d in on_record} == {"workflow_definition"}


async def test_definitions_are_listed_in_pages(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    carol = await make_user()
    ids = [await create(client, carol, three_models()) for _ in range(3)]
    first = await client.get(DEFINITIONS, params={"limit": 2}, headers=carol.headers)
    page = first.json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = await client.get(
        DEFINITIONS, params={"limit": 2, "cursor": page["next_cursor"]}, headers=carol.headers
    )
    listed = [d["id"] for d in page["items"]] + [d["id"] for d in rest.json()["items"]]
    assert sorted(listed) == sorted(ids)
    assert rest.json()["next_cursor"] is None

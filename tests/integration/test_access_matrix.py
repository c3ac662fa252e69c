"""The access-control matrix: every route that takes an id, tried by a user who does not
own the resource, and every authenticated route tried by a deactivated user.

The route table is the app's own (its OpenAPI document, which lists every API route:
FastAPI 0.165 keeps included routers nested, so `app.routes` is not flat), so a route added
later fails `test_every_route_with_a_path_parameter_is_in_the_matrix` until it is added here.

Adding a route is ONE line in `MATRIX`: `("GET", "/api/v1/things/{thing_id}"): 404,` — the
status user B must get for user A's resource (404 for resources: no existence leak; 403 for
admin-only routes). Path parameters are filled by name from `World.ids`, so a route over a
new kind of resource also needs that resource made for A in `make_world` (one `ids[...] =`
line; a parameter that names no secret of A's, such as a version number, goes in `FIXED`). A
POST/PUT/PATCH route is sent `BODIES[route]` (a valid body, so the answer is about access, not
validation), else `{"title": "taken over"}`. A route that needs no authentication goes in
`PUBLIC` instead.

User B also lists: `LISTS` names the list routes whose answers must never contain A's ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from account_support import ADMIN, AUTH, Credentials, bearer, credentials_of, new_admin
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from conftest import UserFactory, make_settings

# (method, path template) -> the status user B gets for user A's resource.
MATRIX: dict[tuple[str, str], int] = {
    ("DELETE", "/api/v1/auth/api-keys/{key_id}"): 404,
    ("GET", "/api/v1/conversations/{conversation_id}"): 404,
    ("PATCH", "/api/v1/conversations/{conversation_id}"): 404,
    ("DELETE", "/api/v1/conversations/{conversation_id}"): 404,
    ("GET", "/api/v1/conversations/{conversation_id}/messages"): 404,
    ("GET", "/api/v1/executions/{execution_id}"): 404,
    ("GET", "/api/v1/webhooks/{webhook_id}"): 404,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): 404,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): 404,
    ("GET", "/api/v1/analytics/conversations/{conversation_id}"): 404,
    ("GET", "/api/v1/traces/{correlation_id}"): 404,
    ("GET", "/api/v1/admin/users/{user_id}"): 403,
    ("GET", "/api/v1/admin/users/{user_id}/api-keys"): 403,
    ("POST", "/api/v1/admin/users/{user_id}/deactivate"): 403,
    ("POST", "/api/v1/admin/users/{user_id}/reactivate"): 403,
    ("PUT", "/api/v1/admin/users/{user_id}/role"): 403,
    ("DELETE", "/api/v1/admin/api-keys/{key_id}"): 403,
    ("GET", "/api/v1/admin/users/{user_id}/budget"): 403,
    ("PUT", "/api/v1/admin/users/{user_id}/budget"): 403,
    ("GET", "/api/v1/admin/users/{user_id}/usage"): 403,
    ("GET", "/api/v1/admin/users/{user_id}/rate-limits"): 403,
    ("PUT", "/api/v1/admin/users/{user_id}/rate-limits"): 403,
    ("DELETE", "/api/v1/tool-servers/{name}"): 403,
    ("GET", "/api/v1/workflows/definitions/{definition_id}"): 404,
    ("PUT", "/api/v1/workflows/definitions/{definition_id}"): 404,
    ("DELETE", "/api/v1/workflows/definitions/{definition_id}"): 404,
    ("GET", "/api/v1/workflows/definitions/{definition_id}/versions/{version}"): 404,
    ("POST", "/api/v1/workflows/definitions/{definition_id}/execute"): 404,
    ("POST", "/api/v1/workflows/definitions/{definition_id}/execute/stream"): 404,
}

# Path parameters that are not A's secrets (so not looked for in B's lists).
FIXED = {"version": "1", "name": "access_matrix_server"}

# A minimal valid workflow definition (one model node).
DEFINITION: dict[str, Any] = {
    "name": "access_matrix",
    "nodes": [{"id": "answer", "type": "model"}],
    "entry": "answer",
}

# Valid bodies for the routes that take one (others get {"title": "taken over"}).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/admin/users/{user_id}/role"): {"role": "admin"},
    ("PUT", "/api/v1/admin/users/{user_id}/budget"): {"daily_tokens": 1},
    ("PUT", "/api/v1/admin/users/{user_id}/rate-limits"): {"requests_per_minute": 1},
    ("PUT", "/api/v1/workflows/definitions/{definition_id}"): {
        **DEFINITION,
        "name": "taken_over",
    },
    ("POST", "/api/v1/workflows/definitions/{definition_id}/execute"): {"input": "hi"},
    ("POST", "/api/v1/workflows/definitions/{definition_id}/execute/stream"): {"input": "hi"},
}

# Ids in request bodies or queries rather than paths: (method, path, body or query).
BY_BODY: list[tuple[str, str, dict[str, str]]] = [
    ("POST", "/api/v1/chat", {"conversation_id": "{conversation_id}", "message": "hi"}),
    ("POST", "/api/v1/chat/stream", {"conversation_id": "{conversation_id}", "message": "hi"}),
]

# List routes (with the query that would single A's resource out): B's answer never has
# any of A's ids in it.
LISTS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/conversations", {}),
    ("/api/v1/auth/api-keys", {}),
    ("/api/v1/webhooks", {}),
    ("/api/v1/events/history", {}),
    ("/api/v1/events/history", {"conversation_id": "{conversation_id}"}),
    ("/api/v1/events/history", {"execution_id": "{execution_id}"}),
    ("/api/v1/events/history", {"correlation_id": "{correlation_id}"}),
    ("/api/v1/monitoring/workflows", {}),
    ("/api/v1/analytics/summary", {}),
    ("/api/v1/workflows/definitions", {}),
    ("/api/v1/workflows/executions", {}),
    ("/api/v1/workflows/executions", {"definition_id": "{definition_id}"}),
]

# Routes anyone may call (no credentials): not part of the deactivated-user sweep.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
}


@dataclass(frozen=True)
class World:
    """User A's resources, by the path-parameter name that reaches each."""

    owner: Credentials
    ids: dict[str, str]


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    # Webhooks to 127.0.0.1 (nothing listens: deliveries just fail, which is fine here).
    return make_settings(database_url, webhooks={"allow_private_targets": True})


def operations(app: FastAPI) -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item]


async def make_world(client: httpx.AsyncClient, owner: Credentials) -> World:
    headers = owner.actor.headers
    chat = await client.post("/api/v1/chat", json={"message": "hello"}, headers=headers)
    assert chat.status_code == 200, chat.text
    webhook = await client.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=headers
    )
    assert webhook.status_code == 201, webhook.text
    definition = await client.post(
        "/api/v1/workflows/definitions", json=DEFINITION, headers=headers
    )
    assert definition.status_code == 201, definition.text
    definition_id = definition.json()["id"]
    run = await client.post(
        f"/api/v1/workflows/definitions/{definition_id}/execute",
        json={"input": "hello"},
        headers=headers,
    )
    assert run.status_code == 200, run.text
    ids = {
        "conversation_id": chat.json()["conversation"]["id"],
        "execution_id": chat.json()["execution"]["id"],
        "correlation_id": chat.headers["x-correlation-id"],
        "webhook_id": webhook.json()["id"],
        "key_id": owner.api_key_id,
        "user_id": owner.actor.id,
        "definition_id": definition_id,
        "workflow_execution_id": run.json()["execution"]["id"],
    }
    return World(owner, ids)


def filled(template: str, world: World) -> str:
    return template.format(**world.ids, **FIXED)


def body_for(method: str, path: str) -> dict[str, Any] | None:
    if method not in ("POST", "PUT", "PATCH"):
        return None
    return BODIES.get((method, path), {"title": "taken over"})


def test_every_route_with_a_path_parameter_is_in_the_matrix(app: FastAPI) -> None:
    missing = [op for op in operations(app) if "{" in op[1] and op not in MATRIX]
    assert not missing, (
        f"Routes with a path parameter not in the access matrix: {missing}. Add one line per "
        "route to MATRIX in tests/integration/test_access_matrix.py (see its docstring)."
    )
    stale = [op for op in MATRIX if op not in operations(app)]
    assert not stale, f"MATRIX names routes the app no longer has: {stale}"


async def test_another_user_gets_404_for_every_resource_and_never_lists_it(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    world = await make_world(client, await credentials_of(client, await make_user()))
    intruder = await make_user()
    owner_headers = world.owner.actor.headers
    for (method, template), expected in MATRIX.items():
        path = filled(template, world)
        if method == "GET" and expected == 404:
            # The id is real: its owner reads it.
            assert (await client.get(path, headers=owner_headers)).status_code == 200, path
        response = await client.request(
            method, path, json=body_for(method, template), headers=intruder.headers
        )
        assert response.status_code == expected, (method, template, response.text)
        if expected == 404:
            assert response.json()["error"]["code"] == "not_found"
    for method, path, body in BY_BODY:
        filled_body = {key: value.format(**world.ids) for key, value in body.items()}
        response = await client.request(method, path, json=filled_body, headers=intruder.headers)
        assert response.status_code == 404, (method, path, response.text)
    # Nothing of A's was changed or deleted by the attempts.
    for template in ("/api/v1/conversations/{conversation_id}", "/api/v1/webhooks/{webhook_id}"):
        kept = await client.get(filled(template, world), headers=owner_headers)
        assert kept.status_code == 200
        assert kept.json().get("title") != "taken over"
    kept = await client.get(
        filled("/api/v1/workflows/definitions/{definition_id}", world), headers=owner_headers
    )
    assert kept.status_code == 200
    assert (kept.json()["current_version"], kept.json()["deleted"]) == (1, False)
    assert kept.json()["definition"]["name"] == DEFINITION["name"]
    assert (await client.get(f"{AUTH}/me", headers=bearer(world.owner.api_key))).status_code == 200

    secret_ids = set(world.ids.values()) - {intruder.id}
    for path, query in LISTS:
        params = {key: value.format(**world.ids) for key, value in query.items()}
        listed = await client.get(path, params=params, headers=intruder.headers)
        assert listed.status_code == 200, (path, listed.text)
        leaked = [value for value in secret_ids if value in json.dumps(listed.json())]
        assert not leaked, (path, params, leaked)
        # The owner's own answer does show them (the check above is not vacuous).
    for path, key in (
        ("/api/v1/conversations", "conversation_id"),
        ("/api/v1/workflows/definitions", "definition_id"),
        ("/api/v1/workflows/executions", "workflow_execution_id"),
    ):
        owner_list = await client.get(path, headers=owner_headers)
        assert world.ids[key] in json.dumps(owner_list.json()), path


async def test_a_deactivated_user_gets_401_everywhere(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    world = await make_world(client, await credentials_of(client, await make_user()))
    admin = await new_admin(make_user, engine)
    off = await client.post(
        f"{ADMIN}/users/{world.owner.actor.id}/deactivate", headers=admin.headers
    )
    assert off.status_code == 200
    owner = world.owner
    refreshed = await client.post(f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token})
    assert refreshed.status_code == 401
    swept = 0
    for method, template in operations(app):
        if (method, template) in PUBLIC:
            continue
        path = filled(template, world)
        for credential in (owner.access_token, owner.refresh_token, owner.api_key):
            response = await client.request(
                method, path, json=body_for(method, template) or {}, headers=bearer(credential)
            )
            assert response.status_code == 401, (method, template, response.text)
            swept += 1
    assert swept >= 3 * 30  # the sweep did sweep

"""Inputs a schema fuzzer found answered with 500s (or with a lax 200): each is a clear 4xx
in the JSON error shape now, over real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from chatter.api.schemas.common import MAX_JSON_DEPTH
from conftest import Actor, UserFactory

CONVERSATIONS = "/api/v1/conversations"
JSON = {"Content-Type": "application/json"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "correlation_id"}, error
    assert error["code"] == code, error
    return dict(error)


def cursor_of(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture(scope="module")
async def actor(make_user: UserFactory) -> Actor:
    return await make_user()


# --- dates that overflow when converted to UTC -------------------------------------------


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_api_key_expiry_past_the_utc_range_is_422(
    client: httpx.AsyncClient, actor: Actor, expires_at: str
) -> None:
    response = await client.post(
        "/api/v1/auth/api-keys",
        json={"name": "far", "expires_at": expires_at},
        headers=actor.headers,
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "expires_at"]


async def test_api_key_expiry_is_stored_in_utc(client: httpx.AsyncClient, actor: Actor) -> None:
    response = await client.post(
        "/api/v1/auth/api-keys",
        json={"name": "late", "expires_at": "9999-12-31T09:59:59-14:00"},
        headers=actor.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"].startswith("9999-12-31T23:59:59")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_cursor_past_the_utc_range_is_400(
    client: httpx.AsyncClient, actor: Actor, moment: str
) -> None:
    cursor = cursor_of([moment, "01J00000000000000000000000"])
    response = await client.get(CONVERSATIONS, params={"cursor": cursor}, headers=actor.headers)
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("junk", ["+", "/", "=", "!", " "])
async def test_cursor_outside_its_alphabet_is_400(
    client: httpx.AsyncClient, actor: Actor, junk: str
) -> None:
    # base64 decoding would skip the junk and accept the rest.
    cursor = cursor_of(["2026-01-01T00:00:00+00:00", "01J00000000000000000000000"]) + junk
    response = await client.get(CONVERSATIONS, params={"cursor": cursor}, headers=actor.headers)
    assert_error(response, 400, "bad_request")


# --- bodies that are not JSON a route can take --------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 955, 5_000, 100_000])
async def test_deeply_nested_field_is_422(
    client: httpx.AsyncClient, actor: Actor, depth: int
) -> None:
    body = b'{"title": ' + nested(depth) + b"}"
    response = await client.post(CONVERSATIONS, content=body, headers={**actor.headers, **JSON})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, 955, 100_000])
async def test_depth_limit_holds_for_unknown_fields_too(
    client: httpx.AsyncClient, actor: Actor, depth: int
) -> None:
    # The body object is level 1: the limit is reached, not passed, at MAX_JSON_DEPTH - 1.
    body = b'{"title": "deep", "extra": ' + nested(depth) + b"}"
    response = await client.post(CONVERSATIONS, content=body, headers={**actor.headers, **JSON})
    if depth < MAX_JSON_DEPTH:
        assert response.status_code == 201, response.text
    else:
        assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("body", [b"\xff\xfe{", b'{"title": "\xc3"}', b"\x1a\x80|"])
async def test_body_that_is_not_utf8_is_422(
    client: httpx.AsyncClient, actor: Actor, body: bytes
) -> None:
    response = await client.post(CONVERSATIONS, content=body, headers={**actor.headers, **JSON})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "body", [b'{"title": "\\ud800"}', b'{"title": "a\\udfffb"}', b'{"title": "a\\u0000"}']
)
async def test_nul_and_lone_surrogates_in_fields_are_422(
    client: httpx.AsyncClient, actor: Actor, body: bytes
) -> None:
    response = await client.post(CONVERSATIONS, content=body, headers={**actor.headers, **JSON})
    error = assert_error(response, 422, "validation_error")
    assert "text must not contain" in error["details"][0]["msg"]


async def test_unknown_fields_are_ignored_whatever_they_hold(
    client: httpx.AsyncClient, actor: Actor
) -> None:
    body = b'{"title": "ok \\ud83d\\ude00", "\\u0000": ["\\u0000", {"\\ud800": 1}]}'
    response = await client.post(CONVERSATIONS, content=body, headers={**actor.headers, **JSON})
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "ok \U0001f600"


# --- numbers are numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"temperature": True},
        {"temperature": "0.5"},
        {"max_tokens": "12"},
        {"max_tokens": True},
        {"max_tokens": 12.5},
        {"max_tokens": [12]},
    ],
)
async def test_chat_options_are_strictly_typed(
    client: httpx.AsyncClient, actor: Actor, field: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/chat", json={"message": "hi", **field}, headers=actor.headers
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", next(iter(field))]


async def test_integral_temperature_is_still_a_number(
    client: httpx.AsyncClient, actor: Actor
) -> None:
    response = await client.post(
        "/api/v1/chat",
        json={"message": "hi", "temperature": 1, "max_tokens": 12.0},  # JSON Schema integers
        headers=actor.headers,
    )
    assert response.status_code == 200, response.text


# --- 405 names every method of the path ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/v1/conversations/01J00000000000000000000000", "DELETE, GET, PATCH"),
        ("PUT", "/api/v1/conversations", "GET, POST"),
        ("PATCH", "/api/v1/auth/api-keys", "GET, POST"),
        ("GET", "/api/v1/chat", "POST"),
        ("DELETE", "/healthz", "GET"),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, actor: Actor, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path, headers=actor.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed

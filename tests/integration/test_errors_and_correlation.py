"""One error shape for every failure, and a correlation id on every response and log line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatter.app import create_app
from chatter.domain.ids import is_valid_correlation_id
from chatter.observability.logging import configure_logging
from conftest import make_settings

HEADER = "X-Correlation-ID"
SECRET = "secret internals"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "correlation_id"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["correlation_id"] == response.headers[HEADER]
    return dict(error)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Apps built inside a test bind logging to that test's captured stderr; undo it after.

    Request this fixture before capsys/capfd so it is torn down after them."""
    yield
    configure_logging()


@asynccontextmanager
async def app_with_failing_route(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(make_settings(database_url))

    async def explode() -> None:
        raise RuntimeError(SECRET)

    app.add_api_route("/boom", explode, methods=["GET"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatter.test") as client:
            yield client


# --- the error shape ----------------------------------------------------------------------


async def test_validation_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={"email": "x"})
    error = assert_error(response, 422, "validation_error")
    assert isinstance(error["details"], list)
    assert error["details"]
    locations = {tuple(item["loc"]) for item in error["details"]}
    assert ("body", "password") in locations
    for item in error["details"]:
        assert set(item) == {"loc", "msg", "type"}


async def test_malformed_json_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


async def test_unknown_route_is_not_found(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.get("/api/v1/nope"), 404, "not_found")
    assert error["details"] is None


async def test_wrong_method_is_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_unauthorized_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/conversations")
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unhandled_exception_is_a_bare_500(
    database_url: str, restore_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    async with app_with_failing_route(database_url) as client:
        response = await client.get("/boom", headers={HEADER: "trace-500-abc"})
        assert response.status_code == 500
        error = assert_error(response, 500, "internal_error")
        assert error["correlation_id"] == "trace-500-abc"
        assert error["details"] is None
        assert SECRET not in response.text
        assert "RuntimeError" not in response.text
        assert "Traceback" not in response.text

        # The app keeps serving afterwards.
        assert (await client.get("/healthz")).status_code == 200

    captured = capfd.readouterr()
    logged = captured.err + captured.out
    error_lines = [line for line in logged.splitlines() if "unhandled_error" in line]
    assert error_lines, logged
    assert any("trace-500-abc" in line for line in error_lines), logged
    # The traceback is in the log, where operators can read it.
    assert SECRET in logged


async def test_500_without_header_gets_a_generated_id_in_body_and_log(
    database_url: str, restore_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    async with app_with_failing_route(database_url) as client:
        response = await client.get("/boom")
    error = assert_error(response, 500, "internal_error")
    generated = response.headers[HEADER]
    assert is_valid_correlation_id(generated)
    assert error["correlation_id"] == generated
    captured = capfd.readouterr()
    assert generated in captured.err + captured.out


# --- correlation ids ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc-123", "req:1.2_3", "x" * 128, "01HZY3TQ0V8RZ5Q9E6M1K2J3A4"])
async def test_valid_correlation_id_is_echoed(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/healthz", headers={HEADER: value})
    assert response.status_code == 200
    assert response.headers[HEADER] == value


async def test_correlation_id_header_name_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-correlation-id": "lower-case"})
    assert response.headers[HEADER] == "lower-case"


async def test_missing_correlation_id_is_generated(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert is_valid_correlation_id(first.headers[HEADER])
    assert first.headers[HEADER] != second.headers[HEADER]
    assert len(first.headers.get_list(HEADER)) == 1


async def test_error_body_carries_the_generated_correlation_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/nope")
    generated = response.headers[HEADER]
    assert is_valid_correlation_id(generated)
    assert response.json()["error"]["correlation_id"] == generated


async def test_error_body_carries_the_given_correlation_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me", headers={HEADER: "given-id-42"})
    error = assert_error(response, 401, "unauthorized")
    assert error["correlation_id"] == "given-id-42"


@pytest.mark.parametrize(
    "value",
    ["x" * 129, "has spaces", "", "bad/slash", "semi;colon", "new\tline", "<script>"],
    ids=["too-long", "spaces", "empty", "slash", "semicolon", "tab", "markup"],
)
async def test_invalid_correlation_id_is_replaced(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/v1/nope", headers={HEADER: value})
    returned = response.headers[HEADER]
    assert returned != value
    assert is_valid_correlation_id(returned)
    assert response.json()["error"]["correlation_id"] == returned
    assert len(response.headers.get_list(HEADER)) == 1

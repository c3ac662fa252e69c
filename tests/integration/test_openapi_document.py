"""The OpenAPI document states the rules the server enforces and the errors it answers.
(tests/fuzz/run.py checks the server against it; these pin the document itself.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chatter.api.compat.openai_wire import TOOL_NAME
from chatter.api.schemas.budgets import CURRENCY_CODE, DECIMAL_TEXT
from chatter.api.schemas.common import TEXT_PATTERN
from chatter.api.schemas.conversations import WORKFLOW_REF
from chatter.services.pagination import CURSOR_PATTERN

# The error statuses each operation can answer: the document must list exactly these.
# (503: every route that reaches the database can find it busy.)
EXPECTED_ERRORS = {
    ("get", "/healthz"): set(),
    ("get", "/readyz"): {"503"},
    ("post", "/api/v1/auth/register"): {"403", "409", "422", "429", "503"},
    ("post", "/api/v1/auth/login"): {"401", "422", "429", "503"},
    ("post", "/api/v1/auth/refresh"): {"401", "422", "503"},
    ("post", "/api/v1/auth/logout"): {"401", "422", "503"},
    ("get", "/api/v1/auth/me"): {"401", "503"},
    ("post", "/api/v1/auth/logout-all"): {"401", "503"},
    ("post", "/api/v1/auth/password"): {"401", "422", "503"},
    ("get", "/api/v1/auth/api-keys"): {"401", "503"},
    ("post", "/api/v1/auth/api-keys"): {"400", "401", "422", "503"},
    ("delete", "/api/v1/auth/api-keys/{key_id}"): {"401", "404", "503"},
    ("post", "/api/v1/conversations"): {"401", "422", "503"},
    ("get", "/api/v1/conversations"): {"400", "401", "403", "422", "503"},
    ("get", "/api/v1/conversations/{conversation_id}"): {"401", "404", "503"},
    ("patch", "/api/v1/conversations/{conversation_id}"): {"400", "401", "404", "422", "503"},
    ("delete", "/api/v1/conversations/{conversation_id}"): {"401", "404", "409", "503"},
    ("get", "/api/v1/conversations/{conversation_id}/messages"): {
        "400",
        "401",
        "404",
        "422",
        "503",
    },
    ("post", "/api/v1/chat"): {"400", "401", "402", "404", "409", "422", "429", "502", "503"},
    ("post", "/api/v1/chat/stream"): {"400", "401", "402", "404", "422", "429", "503"},
    ("get", "/api/v1/executions/{execution_id}"): {"401", "404", "503"},
    ("get", "/api/v1/providers"): {"401", "503"},
    ("get", "/api/v1/events"): {"401", "403", "422", "503"},
    ("get", "/api/v1/events/history"): {"400", "401", "403", "422", "503"},
    ("post", "/api/v1/webhooks"): {"401", "403", "409", "422", "503"},
    ("get", "/api/v1/webhooks"): {"401", "503"},
    ("get", "/api/v1/webhooks/{webhook_id}"): {"401", "404", "503"},
    ("delete", "/api/v1/webhooks/{webhook_id}"): {"401", "404", "503"},
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries"): {"400", "401", "404", "422", "503"},
    ("get", "/api/v1/analytics/summary"): {"401", "403", "422", "503"},
    ("get", "/api/v1/analytics/usage"): {"401", "403", "422", "503"},
    ("get", "/api/v1/analytics/conversations/{conversation_id}"): {"401", "404", "503"},
    ("get", "/api/v1/monitoring/workflows"): {"400", "401", "403", "422", "503"},
    ("get", "/api/v1/monitoring/stats"): {"401", "403", "422", "503"},
    ("get", "/api/v1/traces/{correlation_id}"): {"401", "404", "503"},
    ("get", "/metrics"): {"401", "403", "503"},
    ("get", "/api/v1/workflows/node-types"): {"401", "503"},
    ("get", "/api/v1/workflows/templates"): {"401", "503"},
    ("post", "/api/v1/workflows/definitions/validate"): {"401", "422", "503"},
    ("post", "/api/v1/workflows/definitions"): {"401", "422", "503"},
    ("get", "/api/v1/workflows/definitions"): {"400", "401", "422", "503"},
    ("get", "/api/v1/workflows/definitions/{definition_id}"): {"401", "404", "422", "503"},
    ("put", "/api/v1/workflows/definitions/{definition_id}"): {"401", "404", "422", "503"},
    ("delete", "/api/v1/workflows/definitions/{definition_id}"): {"401", "404", "422", "503"},
    ("get", "/api/v1/workflows/definitions/{definition_id}/versions/{version}"): {
        "401",
        "404",
        "422",
        "503",
    },
    ("post", "/api/v1/workflows/definitions/{definition_id}/execute"): {
        "400",
        "401",
        "402",
        "404",
        "429",
        "409",
        "422",
        "502",
        "503",
    },
    ("post", "/api/v1/workflows/definitions/{definition_id}/execute/stream"): {
        "400",
        "401",
        "402",
        "404",
        "429",
        "422",
        "503",
    },
    ("get", "/api/v1/workflows/executions"): {"400", "401", "422", "503"},
    ("post", "/api/v1/tool-servers"): {"401", "403", "409", "422", "503"},
    ("get", "/api/v1/tool-servers"): {"401", "403", "503"},
    ("delete", "/api/v1/tool-servers/{name}"): {"401", "403", "404", "422", "503"},
    ("get", "/api/v1/admin/users"): {"400", "401", "403", "422", "503"},
    ("get", "/api/v1/admin/users/{user_id}"): {"401", "403", "404", "503"},
    ("get", "/api/v1/admin/users/{user_id}/api-keys"): {"401", "403", "404", "503"},
    ("post", "/api/v1/admin/users/{user_id}/deactivate"): {"401", "403", "404", "409", "503"},
    ("post", "/api/v1/admin/users/{user_id}/reactivate"): {"401", "403", "404", "503"},
    ("put", "/api/v1/admin/users/{user_id}/role"): {"401", "403", "404", "409", "422", "503"},
    ("delete", "/api/v1/admin/api-keys/{key_id}"): {"401", "403", "404", "503"},
    ("get", "/api/v1/admin/users/{user_id}/rate-limits"): {"401", "403", "404", "503"},
    ("put", "/api/v1/admin/users/{user_id}/rate-limits"): {"401", "403", "404", "422", "503"},
    ("put", "/api/v1/admin/users/{user_id}/budget"): {"401", "403", "404", "422", "503"},
    ("get", "/api/v1/admin/users/{user_id}/budget"): {"401", "403", "404", "503"},
    ("get", "/api/v1/admin/users/{user_id}/usage"): {"401", "403", "404", "503"},
    ("get", "/api/v1/auth/me/usage"): {"401", "503"},
    # The compatible endpoints: invalid input is a 400 in their own format, never a 422.
    ("post", "/v1/chat/completions"): {"400", "401", "402", "404", "409", "429", "502", "503"},
    ("get", "/v1/models"): {"401", "503"},
    ("post", "/v1/messages"): {"400", "401", "402", "404", "409", "429", "502", "503"},
}
# Their errors are in the wire format they speak (api/compat/errors.py).
COMPAT_ERRORS = {
    "/v1/chat/completions": "#/components/schemas/OpenAIErrorOut",
    "/v1/models": "#/components/schemas/OpenAIErrorOut",
    "/v1/messages": "#/components/schemas/AnthropicErrorOut",
}
# Besides these, every operation with a request body can answer 413 (body over the limit).


@pytest.fixture(scope="module")
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def variants(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [prop, *prop.get("anyOf", [])]


def test_every_operation_lists_exactly_the_errors_it_can_answer(document: dict[str, Any]) -> None:
    listed = {
        key: {status for status in operation["responses"] if int(status) >= 400}
        for key, operation in operations(document).items()
    }
    expected = {
        key: errors | ({"413"} if "requestBody" in operations(document)[key] else set())
        for key, errors in EXPECTED_ERRORS.items()
    }
    assert listed == expected


def test_errors_use_the_error_shape(document: dict[str, Any]) -> None:
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) < 400 or key == ("get", "/readyz"):
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            expected = COMPAT_ERRORS.get(key[1], "#/components/schemas/ErrorResponse")
            if status == "413":  # refused at the ASGI edge, before any route: Chatter's shape
                expected = "#/components/schemas/ErrorResponse"
            assert ref == expected, (key, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    body = schema(document, "ErrorBody")
    assert set(body["required"]) == {"code", "message", "details", "correlation_id"}


def test_every_response_documents_its_headers(document: dict[str, Any]) -> None:
    headers = document["components"]["headers"]
    assert headers["X-Correlation-ID"]["required"] is True
    busy = document["paths"]["/api/v1/chat"]["post"]["responses"]["503"]
    assert busy["headers"]["Retry-After"]["required"] is True
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            assert "X-Correlation-ID" in response["headers"], (key, status)
            assert ("WWW-Authenticate" in response["headers"]) == (status == "401"), (key, status)


def test_request_text_states_the_nul_rule(document: dict[str, Any]) -> None:
    request_bodies = [name for name in document["components"]["schemas"] if name.endswith("In")]
    assert len(request_bodies) >= 7
    for name in request_bodies:
        body = schema(document, name)
        assert "NUL" in body["description"], name
        for field, prop in body["properties"].items():
            for variant in variants(prop):
                if variant.get("type") == "string" and "format" not in variant:
                    allowed = (TEXT_PATTERN, WORKFLOW_REF, CURRENCY_CODE, DECIMAL_TEXT, TOOL_NAME)
                    assert variant.get("pattern") in allowed, (name, field)


def test_chat_options_are_strict_numbers(document: dict[str, Any]) -> None:
    chat = schema(document, "ChatIn")["properties"]
    assert [v.get("type") for v in variants(chat["temperature"])][1:] == ["number", "null"]
    assert [v.get("type") for v in variants(chat["max_tokens"])][1:] == ["integer", "null"]
    assert "400" in chat["provider"]["description"]
    assert chat["temperature"]["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": 2}
    assert chat["max_tokens"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 200_000}


def test_no_constraint_is_spelt_in_pydantic_words(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    for word in ("ge", "le", "gt", "lt"):
        assert f'"{word}":' not in text


def test_status_update_is_not_nullable(document: dict[str, Any]) -> None:
    status = schema(document, "ConversationUpdateIn")["properties"]["status"]
    assert status == {"$ref": "#/components/schemas/ConversationStatus", "title": "Status"}


def test_cursor_format_is_stated(document: dict[str, Any]) -> None:
    for path in ("/api/v1/conversations", "/api/v1/conversations/{conversation_id}/messages"):
        (cursor,) = [
            p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "cursor"
        ]
        assert cursor["schema"]["pattern"] == CURSOR_PATTERN  # applies to the string variant
        assert cursor["schema"]["anyOf"][0]["maxLength"] == 512

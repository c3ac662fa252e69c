"""The OpenAPI `responses` of the compatible endpoints: their own error shapes, the SSE
alternative of the 200, and the conversation header."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from chatter.api.schemas.common import RETRY_AFTER

ERROR_DESCRIPTIONS = {
    400: "Invalid request: the body does not match its schema, or asks for something "
    "unsupported (n > 1, non-text content, a tool result without its call, ...).",
    401: "Missing, invalid, expired or revoked API key.",
    402: "Over budget (`budget_exceeded`).",
    404: "Unknown model (`model_not_found`), or a conversation that is not yours.",
    409: "The turn's execution was interrupted (`execution_interrupted`).",
    429: "Rate limited (`rate_limited`).",
    502: "The upstream model provider failed; the turn was recorded as failed.",
    503: "The database is busy (an overload): retry after `Retry-After` seconds.",
}
CONVERSATION = {
    "X-Chatter-Conversation-Id": {
        "description": "The Chatter conversation this call was recorded in; send it back "
        "as a request header to continue it.",
        "schema": {"type": "string"},
    }
}
TURN_ERRORS = (400, 401, 402, 404, 409, 429, 502, 503)
# Marks an operation whose invalid input is a 400 in its own format (api/openapi.py drops
# FastAPI's 422 for it).
ERROR_FORMAT_KEY = "x-chatter-error-format"


def error_responses(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": model, "description": ERROR_DESCRIPTIONS[status]} for status in statuses
    }
    if 503 in responses:
        responses[503]["headers"] = RETRY_AFTER
    return responses


def turn_responses(
    model: type[BaseModel], error: type[BaseModel], stream_description: str
) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "model": model,
            "description": f"The answer (JSON), or with `stream: true` {stream_description}",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "headers": CONVERSATION,
        },
        **error_responses(error, *TURN_ERRORS),
    }

"""Shared request and response shapes, and the error body every route documents."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

T = TypeVar("T")


def money_text(value: Decimal) -> str:
    """Plain notation, trailing zeros dropped: a NUMERIC(28, 10) zero loads as `0E-10`,
    which must read `0` like a freshly created row does."""
    return format(value.normalize(), "f") if value else "0"


# An exact amount, sent as a decimal string (never a float, never exponent notation).
Money = Annotated[Decimal, PlainSerializer(money_text, return_type=str, when_used="json")]


# Nesting deeper than this is refused with 422: no request body needs more, and a bound keeps
# every walk over the input (ours, pydantic's, the JSON encoder's) far from recursion limits.
MAX_JSON_DEPTH = 32
# The NUL rule, as the OpenAPI document states it. (Lone surrogates are refused too, but
# ECMA-262 patterns can't name them: JSON text can only carry them as `\ud800` escapes.)
TEXT_PATTERN = r"^[^\u0000]*$"
BODY_RULES = (
    "No text in a field may contain NUL or a lone UTF-16 surrogate, and the body may not nest "
    f"deeper than {MAX_JSON_DEPTH} levels: both are a 422. Unknown fields are otherwise ignored."
)


def check_text(value: str) -> str:
    """PostgreSQL can't store NUL, and a lone surrogate can't be encoded as UTF-8 (a driver
    would fail on it): refusing both here makes bad text a 422 on every database."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000) characters")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("text must not contain lone UTF-16 surrogates")
    return value


def check_json(data: Any, *, text: bool = True) -> Any:
    """Refuse nesting past MAX_JSON_DEPTH and (with `text`) bad text in any string, keys
    included. Iterative: a deeply nested body must be a 422, never a RecursionError."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if text:
                check_text(value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise ValueError(f"JSON nesting deeper than {MAX_JSON_DEPTH} levels is not accepted")
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        pending.extend((item, depth + 1) for item in items)
    return data


def _document_text_rule(schema: dict[str, Any]) -> None:
    """Add TEXT_PATTERN to every string property without a pattern of its own, so the
    OpenAPI document states the rule `check_json` enforces."""
    schema["description"] = " ".join(filter(None, [schema.get("description"), BODY_RULES]))
    for prop in schema.get("properties", {}).values():
        for variant in [prop, *prop.get("anyOf", [])]:
            if variant.get("type") == "string" and "pattern" not in variant:
                variant["pattern"] = TEXT_PATTERN


class RequestModel(BaseModel):
    """Base of request bodies: refuses NUL characters and lone surrogates in any field, and
    nesting deeper than MAX_JSON_DEPTH, so bad input is a 422 on every database."""

    model_config = ConfigDict(json_schema_extra=_document_text_rule)

    @model_validator(mode="before")
    @classmethod
    def _checked_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # The depth of the whole body, so deep nesting is always this 422, not whatever
            # the JSON parser's stack happens to allow.
            check_json(data, text=False)
            # Text of declared fields only: unknown ones are ignored whatever text they hold
            # (the OpenAPI document allows them).
            check_json([value for key, value in data.items() if key in cls.model_fields])
        return data


def _not_text_or_bool(value: Any) -> Any:
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return value


# For numeric fields: `"12"` and `true` are mistakes to report, not numbers to guess; an
# integer may be spelt 12.0, as JSON Schema's `integer` allows. Put it after the field's
# constraints in `Annotated`, or the document shows them as `ge`/`le`, which no schema reads.
NUMBER_ONLY = BeforeValidator(_not_text_or_bool)


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError("the time must be representable in UTC (years 1 to 9999)") from exc


# A point in time with a UTC offset, normalised to UTC; one past year 9999 in UTC is a 422.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class ApiModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenCountsOut(ApiModel):
    """The token counts of every usage-carrying record (see domain/usage.py)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str = Field(description="A stable, machine-readable code, e.g. `not_found`.")
    message: str
    details: Any = Field(description="More about the error (for 422: one entry per problem).")
    correlation_id: str | None = Field(description="Also sent as the X-Correlation-ID header.")


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_DESCRIPTIONS = {
    400: "Refused: an unknown provider or model, an invalid cursor, a rule of the route.",
    401: "Missing, invalid, expired or revoked credentials.",
    402: "A spend budget would be exceeded (`budget_exceeded`); nothing was run or stored.",
    403: "Not allowed on this server.",
    404: "Not found, or not yours.",
    409: "In conflict with the current state.",
    422: "The request does not match its schema; `details` lists each problem.",
    502: "The model provider failed; the turn was recorded as failed.",
    503: "The database is busy (an overload): retry after `Retry-After` seconds.",
}
RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "string"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for the error statuses a route can answer."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
    if 503 in responses:
        responses[503]["headers"] = RETRY_AFTER
    return responses


# Every route that reaches the database can find its connections all busy (api/errors.py).
DATABASE_RESPONSES = error_responses(503)


def _rate_header(description: str) -> dict[str, Any]:
    return {"description": description, "required": False, "schema": {"type": "string"}}


# Routes behind a rate limit (docs/limits.md): 429 with `Retry-After`, and the `RateLimit-*`
# headers of the window that refused (absent for login lockouts, which have no window).
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "Rate limited (`rate_limited`): retry after `Retry-After` seconds "
        "(also `details.retry_after`).",
        "headers": {
            **RETRY_AFTER,
            "RateLimit-Limit": _rate_header("The window's limit."),
            "RateLimit-Remaining": _rate_header("What is left of it."),
            "RateLimit-Reset": _rate_header("Seconds until the window ends."),
        },
    }
}

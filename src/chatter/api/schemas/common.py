"""Shared response shapes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, model_validator

T = TypeVar("T")


def money_text(value: Decimal) -> str:
    """Plain notation, trailing zeros dropped: a NUMERIC(28, 10) zero loads as `0E-10`,
    which must read `0` like a freshly created row does."""
    return format(value.normalize(), "f") if value else "0"


# An exact amount, sent as a decimal string (never a float, never exponent notation).
Money = Annotated[Decimal, PlainSerializer(money_text, return_type=str, when_used="json")]


def _reject_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000) characters")
    if isinstance(value, dict):
        for item in value.values():
            _reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item)
    return value


class RequestModel(BaseModel):
    """Base of request bodies: refuses NUL characters anywhere (PostgreSQL can't store them,
    and no legitimate text needs them), so bad input is a 422 on every database."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return _reject_nul(data)


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
    code: str
    message: str
    details: Any = None
    correlation_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 422)
}

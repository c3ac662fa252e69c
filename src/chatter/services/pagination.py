"""Opaque keyset cursors: stable under inserts, unlike offsets."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from chatter.errors import BadRequest

T = TypeVar("T")

# What `encode_cursor` issues: unpadded URL-safe base64 (stated in the OpenAPI document).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    invalid = BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    # b64decode would skip characters outside the alphabet: a cursor with any is not ours.
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise invalid
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if not isinstance(values, list) or len(values) != arity:
        raise invalid
    if not all(_utc_representable(value) for value in values):
        raise invalid
    return values


def _utc_representable(value: Any) -> bool:
    """False for a timestamp that can't be converted to UTC (9999-12-31T23:59:59-14:00):
    binding it to a query would overflow. We only ever issue UTC timestamps."""
    if not isinstance(value, str):
        return True
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return True  # not a timestamp: the caller checks its own values
    if moment.tzinfo is None:
        return True
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True

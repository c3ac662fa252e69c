"""Opaque keyset cursors: stable under inserts, unlike offsets."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chatter.errors import BadRequest

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid pagination cursor.", details={"cursor": cursor}) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    return values

"""The request-body walk and the cursor decoder, on inputs a fuzzer likes."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest

from chatter.api.schemas.common import MAX_JSON_DEPTH, check_json
from chatter.errors import BadRequest
from chatter.services.pagination import decode_cursor, encode_cursor


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_walk_is_iterative_far_past_the_recursion_limit() -> None:
    with pytest.raises(ValueError, match="nesting"):
        check_json({"a": nested(sys.getrecursionlimit() * 5)})


def test_walk_accepts_nesting_up_to_the_limit() -> None:
    body = {"a": nested(MAX_JSON_DEPTH - 1)}
    assert check_json(body) is body


@pytest.mark.parametrize(
    "body",
    [{"a": "x\x00"}, {"a\x00": 1}, {"a": [{"b": ["\ud800"]}]}, {"a": {"\udfff": None}}],
)
def test_walk_finds_bad_text_in_values_and_keys(body: Any) -> None:
    with pytest.raises(ValueError, match="text must not contain"):
        check_json(body)


def test_walk_leaves_scalars_and_good_text_alone() -> None:
    body = {"a": [1, 2.5, True, None, "é 😀"], "b": {"c": "ok"}}
    assert check_json(body) is body


def raw_cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "values",
    [
        ["9999-12-31T23:59:59-14:00", "id"],
        ["0001-01-01T00:00:00+00:01", "id"],
    ],
)
def test_cursor_with_a_timestamp_outside_utc_is_invalid(values: list[Any]) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(raw_cursor(values), 2)


@pytest.mark.parametrize(
    "values",
    [
        ["9999-12-31T23:59:59+00:00", "id"],
        ["2026-01-01T00:00:00-14:00", "not a date"],
        ["2026-01-01T00:00:00", 5],  # naive: left to the caller's own check
    ],
)
def test_cursor_values_round_trip(values: list[Any]) -> None:
    assert decode_cursor(encode_cursor(values), 2) == values


def test_walk_can_check_depth_alone() -> None:
    body = {"a\x00": ["\ud800"]}
    assert check_json(body, text=False) is body
    with pytest.raises(ValueError, match="nesting"):
        check_json({"a": nested(MAX_JSON_DEPTH)}, text=False)

"""Identifiers: sortable, URL-safe string ids (ULID) and correlation ids."""

from __future__ import annotations

import re

from ulid import ULID

CORRELATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ULID_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_id() -> str:
    """A new ULID: lexicographically sortable by creation time, 26 characters."""
    return str(ULID())


def is_valid_correlation_id(value: str) -> bool:
    return CORRELATION_ID_PATTERN.fullmatch(value) is not None


def is_valid_id(value: str) -> bool:
    """Whether `value` can be one of our ids; anything else cannot name a row."""
    return ULID_PATTERN.fullmatch(value) is not None

"""Identifiers: sortable, URL-safe string ids (ULID) and correlation ids."""

from __future__ import annotations

import re

from ulid import ULID

CORRELATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_id() -> str:
    """A new ULID: lexicographically sortable by creation time, 26 characters."""
    return str(ULID())


def is_valid_correlation_id(value: str) -> bool:
    return CORRELATION_ID_PATTERN.fullmatch(value) is not None

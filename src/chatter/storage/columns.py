"""Rows from values: the one mapping of `Usage` to columns, and text made storable."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table

from chatter.domain.usage import Usage
from chatter.storage.models import Base


def table_of(model: type[Base]) -> Table:
    """The model's Core table, for plain-row statements on the hot path (no unit of work)."""
    return cast(Table, model.__table__)


def fit(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """Make text from models and users storable alike on SQLite and PostgreSQL: drop NUL
    characters (PostgreSQL refuses them) and clip strings to their column's length."""
    columns = model.__table__.columns
    fitted = {}
    for name, value in values.items():
        if isinstance(value, str):
            value = value.replace("\x00", "")
            length = getattr(columns[name].type, "length", None) if name in columns else None
            if length is not None:
                value = value[:length]
        fitted[name] = value
    return fitted


def usage_columns(usage: Usage) -> dict[str, Any]:
    """A Usage as the columns of a message or LLM call row."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost": usage.cost,
        "cost_known": usage.cost_known,
        "currency": usage.currency,
        "usage_source": usage.source.value,
    }

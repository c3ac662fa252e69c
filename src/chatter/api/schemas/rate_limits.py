"""Admins' per-user rate limit overrides."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from chatter.api.schemas.common import NUMBER_ONLY, RequestModel


class RateLimitsIn(RequestModel):
    """Both overrides, replaced together; null (or omitted) means the server's default."""

    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000), NUMBER_ONLY] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1, le=1_000_000_000), NUMBER_ONLY] | None = None


class RateLimitsOut(BaseModel):
    user_id: str
    requests_per_minute: int = Field(description="In force: the override, else the default.")
    tokens_per_minute: int = Field(description="In force: the override, else the default.")
    requests_per_minute_override: int | None
    tokens_per_minute_override: int | None

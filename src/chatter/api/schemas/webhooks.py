"""Webhook bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chatter.api.schemas.common import ApiModel, RequestModel
from chatter.domain.enums import WebhookDeliveryStatus
from chatter.domain.events import EventType


class WebhookCreateIn(RequestModel):
    url: str = Field(min_length=1, max_length=2048, description="An http(s) URL.")
    event_types: list[EventType] | None = Field(
        default=None,
        min_length=1,
        description="The event types to deliver; omit (or null) for every type.",
    )
    all_users: bool = Field(
        default=False, description="Every user's events, not only yours (administrators only)."
    )


class WebhookOut(ApiModel):
    id: str
    url: str
    event_types: list[EventType] | None
    all_users: bool
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="Signs every delivery (X-Chatter-Signature). Shown only in this response."
    )


class WebhookAttemptOut(ApiModel):
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    created_at: datetime


class WebhookDeliveryOut(BaseModel):
    id: str
    event_id: int
    event_type: str
    status: WebhookDeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[WebhookAttemptOut] = Field(description="The delivery log, oldest first.")

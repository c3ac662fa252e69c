"""Lifecycle events as the API shows them (history pages; SSE frames carry the same JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from chatter.domain.events import EventCategory, EventType, UnifiedEvent


class EventOut(BaseModel):
    id: int
    category: EventCategory
    type: EventType
    created_at: datetime
    correlation_id: str | None
    user_id: str | None
    conversation_id: str | None
    execution_id: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: UnifiedEvent) -> EventOut:
        return cls.model_validate(event.to_json())

"""Lifecycle events as the API shows them (history pages; SSE frames carry the same JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer

from chatter.domain.events import EventCategory, EventType, UnifiedEvent

# Written as `UnifiedEvent.to_json` writes it ("+00:00", not "Z"), so an event reads the
# same in a history page, an SSE frame and a webhook body.
EventTime = Annotated[
    datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")
]


class EventOut(BaseModel):
    """One stored event; SSE frames carry the same JSON as their data."""

    id: int
    category: EventCategory
    type: EventType
    created_at: EventTime
    correlation_id: str | None
    user_id: str | None
    conversation_id: str | None
    execution_id: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: UnifiedEvent) -> EventOut:
        return cls.model_validate(event.to_json())

"""Lifecycle events as values: what happened, to whom, under which correlation id.

A `DomainEvent` is written to the outbox (the `events` table) in the same transaction as
the state it describes; once stored it has an id (monotonic per database, in commit order)
and a time, and travels as a `UnifiedEvent` on the bus, over SSE and to webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventCategory(StrEnum):
    WORKFLOW = "workflow"
    CHAT = "chat"
    TOOL = "tool"
    SECURITY = "security"
    ANALYTICS = "analytics"
    SYSTEM = "system"


class EventType(StrEnum):
    WORKFLOW_STARTED = "workflow_started"
    LLM_CALL_COMPLETED = "llm_call_completed"
    TOOL_CALLED = "tool_called"
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELLED = "workflow_cancelled"
    MESSAGE_CREATED = "message_created"
    CONVERSATION_UPDATED = "conversation_updated"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    TOKEN_REFUSED = "token_refused"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    ACCESS_DENIED = "access_denied"
    RATE_LIMITED = "rate_limited"
    PASSWORD_CHANGED = "password_changed"
    SESSIONS_ENDED = "sessions_ended"
    USER_DEACTIVATED = "user_deactivated"
    USER_REACTIVATED = "user_reactivated"
    USER_ROLE_CHANGED = "user_role_changed"
    USAGE_RECORDED = "usage_recorded"
    NODE_STARTED = "node_started"
    NODE_FINISHED = "node_finished"
    TOOL_SERVER_REGISTERED = "tool_server_registered"
    TOOL_SERVER_DELETED = "tool_server_deleted"
    BUDGET_EXCEEDED = "budget_exceeded"
    BUDGET_THRESHOLD_REACHED = "budget_threshold_reached"


CATEGORY_OF: dict[EventType, EventCategory] = {
    EventType.WORKFLOW_STARTED: EventCategory.WORKFLOW,
    EventType.LLM_CALL_COMPLETED: EventCategory.WORKFLOW,
    EventType.TOOL_CALLED: EventCategory.TOOL,
    EventType.WORKFLOW_COMPLETED: EventCategory.WORKFLOW,
    EventType.WORKFLOW_FAILED: EventCategory.WORKFLOW,
    EventType.WORKFLOW_CANCELLED: EventCategory.WORKFLOW,
    EventType.MESSAGE_CREATED: EventCategory.CHAT,
    EventType.CONVERSATION_UPDATED: EventCategory.CHAT,
    EventType.LOGIN_SUCCEEDED: EventCategory.SECURITY,
    EventType.LOGIN_FAILED: EventCategory.SECURITY,
    EventType.TOKEN_REFUSED: EventCategory.SECURITY,
    EventType.API_KEY_CREATED: EventCategory.SECURITY,
    EventType.API_KEY_REVOKED: EventCategory.SECURITY,
    EventType.ACCESS_DENIED: EventCategory.SECURITY,
    EventType.RATE_LIMITED: EventCategory.SECURITY,
    EventType.PASSWORD_CHANGED: EventCategory.SECURITY,
    EventType.SESSIONS_ENDED: EventCategory.SECURITY,
    EventType.USER_DEACTIVATED: EventCategory.SECURITY,
    EventType.USER_REACTIVATED: EventCategory.SECURITY,
    EventType.USER_ROLE_CHANGED: EventCategory.SECURITY,
    EventType.USAGE_RECORDED: EventCategory.ANALYTICS,
    EventType.NODE_STARTED: EventCategory.WORKFLOW,
    EventType.NODE_FINISHED: EventCategory.WORKFLOW,
    EventType.TOOL_SERVER_REGISTERED: EventCategory.SECURITY,
    EventType.TOOL_SERVER_DELETED: EventCategory.SECURITY,
    EventType.BUDGET_EXCEEDED: EventCategory.SECURITY,
    EventType.BUDGET_THRESHOLD_REACHED: EventCategory.ANALYTICS,
}


@dataclass(frozen=True)
class DomainEvent:
    """An event about to be written with the change it describes."""

    type: EventType
    correlation_id: str | None
    user_id: str | None = None
    conversation_id: str | None = None
    execution_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> EventCategory:
        return CATEGORY_OF[self.type]


@dataclass(frozen=True)
class UnifiedEvent:
    """A stored event: what the bus carries, SSE streams and webhooks deliver."""

    id: int
    category: EventCategory
    type: EventType
    created_at: datetime
    correlation_id: str | None
    user_id: str | None
    conversation_id: str | None
    execution_id: str | None
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category.value,
            "type": self.type.value,
            "created_at": self.created_at.isoformat(),
            "correlation_id": self.correlation_id,
            "user_id": self.user_id,
            "conversation_id": self.conversation_id,
            "execution_id": self.execution_id,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> UnifiedEvent:
        return cls(
            id=int(raw["id"]),
            category=EventCategory(raw["category"]),
            type=EventType(raw["type"]),
            created_at=datetime.fromisoformat(raw["created_at"]),
            correlation_id=raw.get("correlation_id"),
            user_id=raw.get("user_id"),
            conversation_id=raw.get("conversation_id"),
            execution_id=raw.get("execution_id"),
            data=dict(raw.get("data") or {}),
        )


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants and may see. `user_id=None` means every user's (admins
    only); empty tuples mean any."""

    user_id: str | None
    categories: tuple[EventCategory, ...] = ()
    types: tuple[EventType, ...] = ()
    conversation_id: str | None = None
    execution_id: str | None = None
    correlation_id: str | None = None

    def matches(self, event: UnifiedEvent) -> bool:
        return (
            (self.user_id is None or event.user_id == self.user_id)
            and (not self.categories or event.category in self.categories)
            and (not self.types or event.type in self.types)
            and (self.conversation_id is None or event.conversation_id == self.conversation_id)
            and (self.execution_id is None or event.execution_id == self.execution_id)
            and (self.correlation_id is None or event.correlation_id == self.correlation_id)
        )

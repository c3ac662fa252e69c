"""Conversation and message bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from chatter.api.input_limits import limited
from chatter.api.schemas.common import Money, RequestModel, TokenCountsOut
from chatter.domain.enums import ConversationStatus

WORKFLOW_NAME = r"^[a-z][a-z0-9_]{0,63}$"
# A template name, or the id of one of your workflow definitions.
WORKFLOW_REF = r"^([a-z][a-z0-9_]{0,63}|[0-9A-HJKMNP-TV-Z]{26})$"


class ConversationCreateIn(RequestModel):
    title: str | None = Field(default=None, json_schema_extra=limited("max_title_chars"))
    default_provider: str | None = Field(default=None, max_length=64)
    default_model: str | None = Field(default=None, max_length=128)
    default_system_prompt: str | None = Field(
        default=None, json_schema_extra=limited("max_system_prompt_chars")
    )
    default_workflow: str | None = Field(default=None, pattern=WORKFLOW_REF)


class ConversationUpdateIn(ConversationCreateIn):
    # Omit to keep; null is refused with a 400, so the schema does not offer it.
    status: ConversationStatus | SkipJsonSchema[None] = None


class ConversationOut(TokenCountsOut):
    id: str
    user_id: str
    title: str | None
    status: str
    default_provider: str | None
    default_model: str | None
    default_system_prompt: str | None
    default_workflow: str | None
    message_count: int
    total_cost: Money
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MessageOut(TokenCountsOut):
    id: str
    conversation_id: str
    sequence: int
    role: str
    content: str
    status: str
    error: str | None
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    cost: Money
    cost_known: bool
    currency: str
    usage_source: str | None
    provider_used: str | None
    model_used: str | None
    response_time_ms: int | None
    time_to_first_token_ms: int | None
    finish_reason: str | None
    correlation_id: str | None
    workflow_execution_id: str | None
    created_at: datetime

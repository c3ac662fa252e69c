"""Chat, execution and provider bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from chatter.api.input_limits import limited
from chatter.api.schemas.common import (
    NUMBER_ONLY,
    ApiModel,
    Money,
    RequestModel,
    TokenCountsOut,
)
from chatter.api.schemas.conversations import WORKFLOW_REF, ConversationOut, MessageOut


class ChatIn(RequestModel):
    # Length limits come from settings (CHATTER_LIMITS__...), stated in the document.
    message: str = Field(min_length=1, json_schema_extra=limited("max_message_chars"))
    conversation_id: str | None = Field(default=None, max_length=64)
    provider: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A provider listed by GET /api/v1/providers (default: the conversation's, "
        "then the server's). An unknown or unconfigured one is a 400.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="A model of that provider; a model the provider does not offer is a 400.",
    )
    workflow: str | None = Field(
        default=None,
        pattern=WORKFLOW_REF,
        description="A template name (GET /api/v1/workflows/templates) or the id of one of "
        "your workflow definitions (another user's is a 404).",
    )
    system_prompt: str | None = Field(
        default=None, json_schema_extra=limited("max_system_prompt_chars")
    )
    temperature: Annotated[float, Field(ge=0, le=2), NUMBER_ONLY] | None = Field(
        default=None, description="Above the provider's own limit (Anthropic: 1) is a 400."
    )
    max_tokens: Annotated[int, Field(ge=1, le=200_000), NUMBER_ONLY] | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value


class NodeTimingOut(BaseModel):
    """One node step of an execution."""

    node: str
    type: str
    status: str
    duration_ms: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: Money
    currency: str


class ExecutionOut(TokenCountsOut):
    id: str
    user_id: str
    conversation_id: str | None
    workflow_name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    llm_call_count: int
    total_cost: Money
    error: str | None
    correlation_id: str
    definition_id: str | None = None
    definition_version: int | None = None
    node_timings: list[NodeTimingOut] | None = None


class LLMCallOut(TokenCountsOut):
    id: str
    node: str
    provider: str
    model: str
    cost: Money
    cost_known: bool
    price_source: str | None
    currency: str
    usage_source: str
    latency_ms: int
    time_to_first_token_ms: int | None
    finish_reason: str | None
    status: str
    error: str | None
    correlation_id: str
    created_at: datetime


class ToolCallOut(ApiModel):
    id: str
    node: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    result: str
    status: str
    error: str | None = None
    latency_ms: int
    created_at: datetime


class ExecutionDetailOut(ExecutionOut):
    llm_calls: list[LLMCallOut]
    tool_calls: list[ToolCallOut]


class ChatOut(BaseModel):
    conversation: ConversationOut
    user_message: MessageOut
    assistant_message: MessageOut
    tool_messages: list[MessageOut]
    execution: ExecutionOut


class ModelInfoOut(BaseModel):
    name: str
    price_known: bool


class ProviderOut(BaseModel):
    name: str
    kind: str
    configured: bool
    default_model: str
    any_model: bool = Field(description="True when any model name is accepted.")
    models: list[ModelInfoOut]
    base_url: str | None

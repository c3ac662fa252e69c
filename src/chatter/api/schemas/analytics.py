"""Response shapes of /api/v1/analytics. Money is an exact decimal string, with its currency."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chatter.api.schemas.common import Money


class TopModelOut(BaseModel):
    provider: str
    model: str
    currency: str
    requests: int
    total_tokens: int
    cost: Money


class TopConversationOut(BaseModel):
    conversation_id: str
    title: str | None
    currency: str
    requests: int
    total_tokens: int
    cost: Money


class TopUserOut(BaseModel):
    user_id: str
    email: str | None
    currency: str
    requests: int
    total_tokens: int
    cost: Money


class SummaryOut(BaseModel):
    start: datetime
    end: datetime
    currency: str = Field(description="The currency of `cost` (most of the money's).")
    requests: int = Field(description="Model calls.")
    executions: int = Field(description="Finished workflow executions (chat turns).")
    errors: int = Field(description="Executions that failed.")
    cancelled: int = Field(description="Executions that were cancelled.")
    call_errors: int = Field(description="Model calls that did not succeed.")
    error_rate: float = Field(description="errors / executions, 0 when there are none.")
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Money = Field(description="Known costs only, in `currency`.")
    costs: dict[str, Money] = Field(description="Known costs by currency.")
    unknown_price_calls: int = Field(description="Calls whose price is unknown (no cost).")
    estimated_calls: int = Field(description="Calls whose usage was estimated.")
    tool_calls: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    top_models: list[TopModelOut]
    top_conversations: list[TopConversationOut]
    top_users: list[TopUserOut] | None = Field(description="Admins only (else null).")
    active_users: int | None = Field(description="Admins only (else null).")


class UsagePointOut(BaseModel):
    bucket: datetime
    provider: str | None = None
    model: str | None = None
    user_id: str | None = None
    workflow: str | None = None
    currency: str
    requests: int
    executions: int
    errors: int
    cancelled: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    unknown_price_calls: int
    tool_calls: int
    cost: Money


class UsageOut(BaseModel):
    start: datetime
    end: datetime
    granularity: str
    group_by: list[str]
    currency: str
    points: list[UsagePointOut]


class ConversationModelOut(BaseModel):
    provider: str
    model: str
    currency: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Money


class ConversationDayOut(BaseModel):
    day: datetime
    currency: str
    requests: int
    total_tokens: int
    cost: Money


class ConversationAnalyticsOut(BaseModel):
    conversation_id: str
    title: str | None
    currency: str
    message_count: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost: Money
    executions: dict[str, int] = Field(description="Executions by status.")
    by_model: list[ConversationModelOut]
    by_day: list[ConversationDayOut]

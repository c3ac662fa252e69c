"""A trace: everything recorded under one correlation id, grouped and as one timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from chatter.api.schemas.chat import LLMCallOut, ToolCallOut
from chatter.api.schemas.conversations import MessageOut
from chatter.api.schemas.events import EventOut
from chatter.api.schemas.monitoring import WorkflowMetricsOut


class ExecutionItem(WorkflowMetricsOut):
    kind: Literal["execution"] = "execution"
    at: datetime = Field(description="When it started.")


class LLMCallItem(LLMCallOut):
    kind: Literal["llm_call"] = "llm_call"
    execution_id: str
    at: datetime = Field(description="When the call ended and was recorded.")


class ToolCallItem(ToolCallOut):
    kind: Literal["tool_call"] = "tool_call"
    execution_id: str
    at: datetime = Field(description="When the call was recorded.")


class MessageItem(MessageOut):
    kind: Literal["message"] = "message"
    at: datetime


class EventItem(EventOut):
    kind: Literal["event"] = "event"
    at: datetime


TimelineItem = Annotated[
    ExecutionItem | LLMCallItem | ToolCallItem | MessageItem | EventItem,
    Field(discriminator="kind"),
]


class TraceOut(BaseModel):
    correlation_id: str
    timeline: list[TimelineItem] = Field(description="Every record below, in time order.")
    executions: list[WorkflowMetricsOut]
    llm_calls: list[LLMCallItem]
    tool_calls: list[ToolCallItem]
    messages: list[MessageOut]
    events: list[EventOut]

"""Anthropic Messages bodies: requests as accepted, responses as sent, errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from chatter.api.compat.openai_wire import TOOL_NAME
from chatter.api.schemas.common import NUMBER_ONLY, RequestModel

Text = Annotated[str, Field(max_length=1_000_000)]


class TextBlockIn(RequestModel):
    type: Literal["text"]
    text: Text


class ResultPartIn(RequestModel):
    type: str = Field(max_length=64, description='Only "text" parts are accepted (else a 400).')
    text: Text | None = None


class ContentBlockIn(RequestModel):
    """One block: `text`, `tool_use` (assistant) or `tool_result` (user). Other types are
    a 400."""

    type: str = Field(max_length=64)
    text: Text | None = None
    id: str | None = Field(default=None, max_length=128)  # tool_use
    name: str | None = Field(default=None, max_length=128)  # tool_use
    input: dict[str, Any] | None = None  # tool_use
    tool_use_id: str | None = Field(default=None, max_length=128)  # tool_result
    content: Text | list[ResultPartIn] | None = None  # tool_result
    is_error: bool | None = None  # tool_result


class MessageParamIn(RequestModel):
    role: Literal["user", "assistant"]
    content: Text | list[ContentBlockIn]


class ToolIn(RequestModel):
    name: str = Field(min_length=1, max_length=128, pattern=TOOL_NAME)
    description: str | None = Field(default=None, max_length=100_000)
    input_schema: dict[str, Any]
    type: str | None = Field(
        default=None, max_length=64, description='Client tools only ("custom" or none).'
    )


class ToolChoiceIn(RequestModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, max_length=128)
    disable_parallel_tool_use: bool | None = None


class MessagesIn(RequestModel):
    """Anthropic's Messages request. `top_k`, extended `thinking` and server tools are a
    400; other unknown fields are ignored."""

    model: str = Field(
        min_length=1,
        max_length=256,
        description="'provider/model' or a configured alias; else a 404.",
        examples=["demo/demo-1"],
    )
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000), NUMBER_ONLY]
    messages: list[MessageParamIn] = Field(min_length=1, max_length=10_000)
    system: Text | list[TextBlockIn] | None = None
    stream: bool = False
    temperature: Annotated[float, Field(ge=0, le=1), NUMBER_ONLY] | None = None
    top_p: Annotated[float, Field(ge=0, le=1), NUMBER_ONLY] | None = None
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=16
    )
    tools: list[ToolIn] | None = Field(default=None, max_length=128)
    tool_choice: ToolChoiceIn | None = None
    # Accepted only when absent (or thinking disabled): a 400 says which.
    top_k: int | None = None
    thinking: dict[str, Any] | None = None


# Responses


class TextBlockOut(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseBlockOut(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class AnthropicUsageOut(BaseModel):
    input_tokens: int = Field(description="Input tokens excluding cache reads and writes.")
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class AnthropicMessageOut(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[TextBlockOut | ToolUseBlockOut]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: AnthropicUsageOut


class AnthropicErrorDetailOut(BaseModel):
    type: str
    message: str


class AnthropicErrorOut(BaseModel):
    type: Literal["error"] = "error"
    error: AnthropicErrorDetailOut

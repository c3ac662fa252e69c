"""A turn whose input is the client's own message list (the compatible endpoints, /v1/...).

The wire formats (OpenAI, Anthropic) are converted to `InputMessage`s in `api/compat/`; from
them come both the model's input (exactly the client's list, not the stored history) and
the messages stored as the turn's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import ToolCall

from chatter.domain.enums import MessageRole
from chatter.errors import BadRequest
from chatter.providers.tool_choice import ToolChoice
from chatter.storage.messages import MessageDraft


@dataclass(frozen=True)
class RequestedCall:
    """A tool call of an assistant message: Chatter stores them as {"id", "name", "args"}."""

    id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class InputMessage:
    role: MessageRole
    content: str
    tool_call_id: str | None = None  # role TOOL: the call it answers
    tool_calls: tuple[RequestedCall, ...] = ()  # role ASSISTANT


@dataclass(frozen=True)
class ClientTurn:
    """What a compatible endpoint adds to a ChatRequest."""

    messages: tuple[InputMessage, ...]  # the model's whole input, in order
    stored: tuple[InputMessage, ...]  # the turn's input as stored in the conversation
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI function format
    tool_choice: ToolChoice | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()

    def model_input(self) -> list[BaseMessage]:
        return [_langchain(message) for message in self.messages]

    def input_drafts(self, correlation_id: str) -> list[MessageDraft]:
        return [
            MessageDraft(
                message.role,
                message.content,
                fields={
                    "correlation_id": correlation_id,
                    "tool_call_id": message.tool_call_id,
                    "tool_calls": [
                        {"id": call.id, "name": call.name, "args": call.args}
                        for call in message.tool_calls
                    ]
                    or None,
                },
            )
            for message in self.stored
        ]


def stored_input(messages: list[InputMessage], *, continuing: bool) -> tuple[InputMessage, ...]:
    """What a turn stores as its input. A new conversation stores the client's whole list. A
    continued one stores only what follows the list's last assistant message (the earlier
    messages were stored by the turns before), or the last message when the list ends with
    an assistant message (a prefill)."""
    if not continuing:
        return tuple(messages)
    last_assistant = max(
        (i for i, m in enumerate(messages) if m.role is MessageRole.ASSISTANT), default=-1
    )
    return tuple(messages[last_assistant + 1 :] or messages[-1:])


def check_messages(messages: list[InputMessage]) -> None:
    """Something to answer, and every tool result answers a call of an earlier assistant
    message, as both wire formats require: refused here, before anything is written, not
    by the provider."""
    if all(message.role is MessageRole.SYSTEM for message in messages):
        raise BadRequest("messages must hold more than system messages: nothing to answer.")
    asked: set[str] = set()
    for index, message in enumerate(messages):
        asked.update(call.id for call in message.tool_calls)
        if message.role is MessageRole.TOOL and message.tool_call_id not in asked:
            raise BadRequest(
                f"messages[{index}] answers tool call {message.tool_call_id!r}, which no "
                "earlier assistant message made.",
                details={"message": index, "tool_call_id": message.tool_call_id},
            )


def title_of(messages: list[InputMessage]) -> str:
    """The text a new conversation is titled after: the last user message's."""
    for message in reversed(messages):
        if message.role is MessageRole.USER and message.content.strip():
            return message.content
    return "API conversation"


def _langchain(message: InputMessage) -> BaseMessage:
    if message.role is MessageRole.SYSTEM:
        return SystemMessage(message.content)
    if message.role is MessageRole.USER:
        return HumanMessage(message.content)
    if message.role is MessageRole.TOOL:
        return ToolMessage(content=message.content, tool_call_id=message.tool_call_id or "")
    calls = [
        ToolCall(name=call.name, args=call.args, id=call.id, type="tool_call")
        for call in message.tool_calls
    ]
    return AIMessage(content=message.content, tool_calls=calls)

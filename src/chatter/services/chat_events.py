"""What a chat turn streams to its caller: start, the workflow's events, and the close."""

from __future__ import annotations

from dataclasses import dataclass

from chatter.errors import ChatterError
from chatter.storage.models import Conversation, Message, WorkflowExecution
from chatter.workflows.events import (
    ModelCallFinished,
    NodeFinished,
    NodeStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallRequested,
)


@dataclass(frozen=True)
class TurnStarted:
    conversation: Conversation
    user_message: Message
    execution: WorkflowExecution
    correlation_id: str


@dataclass(frozen=True)
class TurnClosed:
    conversation: Conversation
    user_message: Message
    assistant_message: Message
    tool_messages: list[Message]
    execution: WorkflowExecution
    error: ChatterError | None


@dataclass(frozen=True)
class TurnRefused:
    """The turn could not open (its conversation vanished, the database failed), or its
    close could not be written (its execution was then closed as failed): the caller gets
    this error instead of a TurnClosed."""

    error: ChatterError


TurnEvent = (
    TurnStarted
    | TextDelta
    | ToolCallRequested
    | ToolCallFinished
    | ModelCallFinished
    | NodeStarted
    | NodeFinished
    | TurnClosed
    | TurnRefused
)

"""Stored messages -> the LangChain messages a model sees."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import ToolCall
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import MessageRole, MessageStatus
from chatter.storage.models import Message


async def load_recent(
    session: AsyncSession, conversation_id: str, limit: int, *, up_to_sequence: int
) -> list[Message]:
    """The last `limit` messages as of sequence `up_to_sequence` (a turn's own user
    message): messages that concurrent turns appended after it are not this turn's history."""
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.sequence <= up_to_sequence)
        .order_by(Message.sequence.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


def to_langchain(
    messages: Sequence[Message], system_prompt: str | None, *, with_tools: bool = True
) -> list[BaseMessage]:
    """A turn is stored as its tool messages, then one assistant message carrying the turn's
    tool calls; the model must see them as assistant(tool_calls) -> tool results -> answer.

    Without tools (a plain `chat` turn) past tool exchanges are left out, keeping only the
    answers: providers such as Anthropic refuse tool history when no tools are declared."""
    converted: list[BaseMessage] = [SystemMessage(system_prompt)] if system_prompt else []
    pending_tools: list[ToolMessage] = []
    for message in messages:
        if message.role == MessageRole.TOOL.value:
            if not with_tools:
                continue
            pending_tools.append(
                ToolMessage(content=message.content, tool_call_id=message.tool_call_id or "")
            )
        elif message.role == MessageRole.ASSISTANT.value:
            converted.extend(_assistant(message, pending_tools))
            pending_tools = []
        elif message.role == MessageRole.USER.value:
            pending_tools = []
            converted.append(HumanMessage(message.content))
        elif message.role == MessageRole.SYSTEM.value:
            converted.append(SystemMessage(message.content))
    return converted


def _assistant(message: Message, tools: list[ToolMessage]) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    answered = {tool.tool_call_id for tool in tools}
    calls = [
        ToolCall(name=call["name"], args=call.get("args", {}), id=call["id"], type="tool_call")
        for call in message.tool_calls or []
        if call.get("id") in answered
    ]
    if calls:
        out.append(AIMessage(content="", tool_calls=calls))
        out.extend(tool for tool in tools if tool.tool_call_id in {c["id"] for c in calls})
    if message.content and message.status != MessageStatus.ERROR.value:
        out.append(AIMessage(content=message.content))
    return out

"""Appending messages to a conversation. Callers own the transaction.

Aggregates only ever move by SQL increments (`SET x = x + :n`), and appending messages
allocates their sequences in the same UPDATE ... RETURNING, which takes the conversation's
row lock: sequences are unique and gap-free under any number of concurrent turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import MessageRole, MessageStatus
from chatter.domain.usage import Usage, total_usage
from chatter.errors import NotFound
from chatter.storage.columns import fit, usage_columns
from chatter.storage.models import Conversation, Message


@dataclass(frozen=True)
class Appended:
    messages: list[Message]
    conversation: Conversation  # as the append left it (its aggregates included)


@dataclass
class MessageDraft:
    role: MessageRole
    content: str
    status: MessageStatus = MessageStatus.COMPLETE
    usage: Usage | None = None  # None: a message that carries no usage (user, tool)
    fields: dict[str, Any] = field(default_factory=dict)


async def append_messages(
    session: AsyncSession, conversation_id: str, drafts: Sequence[MessageDraft]
) -> Appended:
    """Append messages and grow the conversation's aggregates by their usage, atomically.
    The conversation comes back from the UPDATE itself (RETURNING): no second read."""
    usage = total_usage([draft.usage for draft in drafts if draft.usage is not None])
    now = utcnow()
    conversation = (
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(
                message_count=Conversation.message_count + len(drafts),
                prompt_tokens=Conversation.prompt_tokens + usage.prompt_tokens,
                completion_tokens=Conversation.completion_tokens + usage.completion_tokens,
                total_tokens=Conversation.total_tokens + usage.total_tokens,
                cached_tokens=Conversation.cached_tokens + usage.cached_tokens,
                reasoning_tokens=Conversation.reasoning_tokens + usage.reasoning_tokens,
                total_cost=Conversation.total_cost + usage.cost,
                last_message_at=now,
                updated_at=now,
            )
            .returning(Conversation)
            # The returned row refreshes the session's copy; no evaluation in Python.
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    ).scalar_one_or_none()
    if conversation is None:
        raise NotFound("Conversation not found.", details={"conversation_id": conversation_id})
    first = conversation.message_count - len(drafts) + 1
    messages = [
        _message(conversation_id, first + offset, draft, now) for offset, draft in enumerate(drafts)
    ]
    session.add_all(messages)
    await session.flush()
    return Appended(messages, conversation)


def _message(conversation_id: str, sequence: int, draft: MessageDraft, now: datetime) -> Message:
    values = {
        "conversation_id": conversation_id,
        "sequence": sequence,
        "role": draft.role.value,
        "content": draft.content,
        "status": draft.status.value,
        "created_at": now,
        **draft.fields,
    }
    if draft.usage is not None:
        values.update(usage_columns(draft.usage))
    return Message(**fit(Message, values))

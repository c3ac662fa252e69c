"""Text search over one user's messages (the conversation_search tool)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.storage.models import Conversation, Message

SEARCHED_ROLES = ("user", "assistant")


async def search_messages(
    session: AsyncSession, *, user_id: str, query: str, limit: int
) -> list[tuple[str, str | None, str, str, datetime]]:
    """(conversation id, title, role, content, created_at) of the user's messages that
    contain `query`, case-insensitively, newest first. Only conversations the user owns."""
    needle = query.lower()
    rows = await session.execute(
        select(
            Message.conversation_id,
            Conversation.title,
            Message.role,
            Message.content,
            Message.created_at,
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Conversation.user_id == user_id,
            Message.role.in_(SEARCHED_ROLES),
            # autoescape: `%` and `_` in the query are matched literally.
            func.lower(Message.content).contains(needle, autoescape=True),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]

"""Conversations and their messages, scoped to their owner (admins see all)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import ConversationStatus, ExecutionStatus, UserRole
from chatter.domain.ids import is_valid_id
from chatter.errors import BadRequest, Conflict, Forbidden, NotFound
from chatter.events.publisher import EventPublisher
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.services.security_events import access_denied
from chatter.storage import rollups
from chatter.storage.models import Conversation, Message, User, WorkflowExecution

# Sequences are stored as 32-bit integers; a larger cursor value could not be bound.
MAX_SEQUENCE = 2**31 - 1

EDITABLE_FIELDS = frozenset(
    {
        "title",
        "status",
        "default_provider",
        "default_model",
        "default_system_prompt",
        "default_workflow",
    }
)


@dataclass(frozen=True)
class ConversationDraft:
    title: str | None = None
    default_provider: str | None = None
    default_model: str | None = None
    default_system_prompt: str | None = None
    default_workflow: str | None = None


class ConversationService:
    def __init__(self, events: EventPublisher) -> None:
        self._events = events

    async def create(
        self, *, session: AsyncSession, user: User, draft: ConversationDraft
    ) -> Conversation:
        now = utcnow()
        conversation = Conversation(
            user_id=user.id,
            title=draft.title,
            default_provider=draft.default_provider,
            default_model=draft.default_model,
            default_system_prompt=draft.default_system_prompt,
            default_workflow=draft.default_workflow,
            created_at=now,
            updated_at=now,
        )
        session.add(conversation)
        await session.commit()
        return conversation

    async def get(
        self,
        *,
        session: AsyncSession,
        user: User,
        conversation_id: str,
        correlation_id: str | None = None,
    ) -> Conversation:
        """The conversation if `user` may see it; otherwise 404, never 403 (no existence leak),
        and someone else's is on record as `access_denied`."""
        conversation = (
            await session.get(Conversation, conversation_id)
            if is_valid_id(conversation_id)
            else None
        )
        if conversation is None:
            raise NotFound("Conversation not found.", details={"conversation_id": conversation_id})
        if not _may_read(user, conversation):
            await self._deny(session, user, conversation, correlation_id)
        return conversation

    async def get_owned(
        self, *, session: AsyncSession, user: User, conversation_id: str, correlation_id: str
    ) -> Conversation:
        """The conversation if `user` owns it (to change it or chat in it: admins may read
        everyone's, not write to them); otherwise 404, and `access_denied` when it exists."""
        conversation = await self.get(
            session=session,
            user=user,
            conversation_id=conversation_id,
            correlation_id=correlation_id,
        )
        if conversation.user_id != user.id:
            await self._deny(session, user, conversation, correlation_id)
        return conversation

    async def list(
        self,
        *,
        session: AsyncSession,
        user: User,
        limit: int,
        cursor: str | None,
        status: ConversationStatus | None,
        all_users: bool = False,
    ) -> Page[Conversation]:
        """The user's conversations, newest first; with `all_users`, everyone's (admins)."""
        query = select(Conversation)
        if all_users and user.role != UserRole.ADMIN.value:
            raise Forbidden("Only admins may list every user's conversations.")
        if not all_users:
            query = query.where(Conversation.user_id == user.id)
        if status is not None:
            query = query.where(Conversation.status == status.value)
        if cursor is not None:
            query = _after_cursor(query, cursor)
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        rows = list(await session.scalars(query.limit(limit + 1)))
        await _end_read(session)
        items = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor([last.updated_at.isoformat(), last.id])
        return Page(items=items, next_cursor=next_cursor)

    async def update(
        self,
        *,
        session: AsyncSession,
        user: User,
        conversation_id: str,
        changes: dict[str, Any],
        correlation_id: str,
    ) -> Conversation:
        unknown = set(changes) - EDITABLE_FIELDS
        if unknown:
            raise BadRequest("Unknown fields.", details={"fields": sorted(unknown)})
        conversation = await self.get_owned(
            session=session,
            user=user,
            conversation_id=conversation_id,
            correlation_id=correlation_id,
        )
        values = {
            key: (value.value if isinstance(value, ConversationStatus) else value)
            for key, value in changes.items()
        }
        values["updated_at"] = utcnow()
        # One statement that also returns the row: a DELETE racing this request either
        # ran before (no row: 404) or waits for our commit - never a half-read row.
        updated: Conversation | None = await session.scalar(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(**values)
            .returning(Conversation),
            execution_options={"populate_existing": True},
        )
        if updated is None:
            raise NotFound("Conversation not found.", details={"conversation_id": conversation_id})
        await session.commit()
        return updated

    async def delete(
        self, *, session: AsyncSession, user: User, conversation_id: str, correlation_id: str
    ) -> None:
        conversation = await self.get_owned(
            session=session,
            user=user,
            conversation_id=conversation_id,
            correlation_id=correlation_id,
        )
        # Lock the row first (PostgreSQL; SQLite's writer lock already serialises): a turn
        # opening now either committed its running execution already or will find no row.
        await session.execute(
            select(Conversation.id).where(Conversation.id == conversation.id).with_for_update()
        )
        running = await session.scalar(
            select(func.count(WorkflowExecution.id)).where(
                WorkflowExecution.conversation_id == conversation.id,
                WorkflowExecution.status == ExecutionStatus.RUNNING.value,
            )
        )
        if running:
            # Its turn still has usage to record on this conversation.
            raise Conflict(
                "A chat turn is still running in this conversation; delete it when it ends.",
                details={"conversation_id": conversation_id},
            )
        # Executions keep their usage for accounting; they only lose the link.
        await session.execute(
            update(WorkflowExecution)
            .where(WorkflowExecution.conversation_id == conversation.id)
            .values(conversation_id=None)
        )
        await session.execute(delete(Message).where(Message.conversation_id == conversation.id))
        # Its usage stays in the user's rollups; only the per-conversation view goes with it.
        await rollups.delete_conversation(session, conversation.id)
        await session.execute(delete(Conversation).where(Conversation.id == conversation.id))
        await session.commit()

    async def messages(
        self,
        *,
        session: AsyncSession,
        user: User,
        conversation_id: str,
        limit: int,
        cursor: str | None,
        correlation_id: str,
    ) -> Page[Message]:
        conversation = await self.get(
            session=session,
            user=user,
            conversation_id=conversation_id,
            correlation_id=correlation_id,
        )
        query = select(Message).where(Message.conversation_id == conversation.id)
        if cursor is not None:
            (after_sequence,) = decode_cursor(cursor, 1)
            if (
                not isinstance(after_sequence, int)
                or isinstance(after_sequence, bool)
                or not 0 <= after_sequence <= MAX_SEQUENCE
            ):
                raise BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
            query = query.where(Message.sequence > after_sequence)
        rows = list(await session.scalars(query.order_by(Message.sequence).limit(limit + 1)))
        await _end_read(session)
        items = rows[:limit]
        next_cursor = encode_cursor([items[-1].sequence]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def _deny(
        self,
        session: AsyncSession,
        user: User,
        conversation: Conversation,
        correlation_id: str | None,
    ) -> NoReturn:
        denied = access_denied(correlation_id, user.id, "conversation", conversation.id)
        await self._events.commit(session, [denied])
        raise NotFound("Conversation not found.", details={"conversation_id": conversation.id})


async def _end_read(session: AsyncSession) -> None:
    """End the read transaction (on SQLite it holds the write lock) and keep the loaded rows.

    Not `rollback()`: a rollback expires every loaded object, and reading an expired
    attribute later (while serialising the response) would need IO outside the session's
    greenlet. The factory's `expire_on_commit=False` makes a commit leave them loaded.
    """
    await session.commit()


def _may_read(user: User, conversation: Conversation) -> bool:
    return conversation.user_id == user.id or user.role == UserRole.ADMIN.value


def _after_cursor(query: Select[Conversation], cursor: str) -> Select[Conversation]:
    updated_raw, last_id = decode_cursor(cursor, 2)
    invalid = BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    if not isinstance(updated_raw, str) or not isinstance(last_id, str) or not is_valid_id(last_id):
        raise invalid
    try:
        updated_at = datetime.fromisoformat(updated_raw)
    except ValueError as exc:
        raise invalid from exc
    if updated_at.tzinfo is None:  # we only ever issue UTC timestamps with an offset
        raise invalid
    return query.where(
        or_(
            Conversation.updated_at < updated_at,
            (Conversation.updated_at == updated_at) & (Conversation.id < last_id),
        )
    )

"""API keys: the full key is returned once at creation; only its hash is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.ids import is_valid_id, new_id
from chatter.errors import BadRequest, NotFound
from chatter.events.publisher import EventPublisher
from chatter.services.credentials import generate_api_key
from chatter.services.security_events import access_denied, api_key_changed
from chatter.storage.models import ApiKey, User

# Writing last_used_at on every request would make every read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedApiKey:
    record: ApiKey
    key: str


class ApiKeyService:
    def __init__(self, events: EventPublisher) -> None:
        self._events = events

    async def create(
        self,
        *,
        session: AsyncSession,
        user: User,
        name: str,
        correlation_id: str | None,
        expires_at: datetime | None = None,
    ) -> CreatedApiKey:
        if expires_at is not None and expires_at.tzinfo is None:
            raise BadRequest("expires_at must include a UTC offset.")
        if expires_at is not None and expires_at <= utcnow():
            raise BadRequest("expires_at must be in the future.")
        generated = generate_api_key()
        record = ApiKey(
            id=new_id(),  # now, not at flush: the event names the key
            user_id=user.id,
            name=name,
            prefix=generated.prefix,
            secret_hash=generated.secret_hash,
            expires_at=expires_at,
        )
        session.add(record)
        created = api_key_changed(correlation_id, record, revoked=False)
        await self._events.commit(session, [created])
        return CreatedApiKey(record=record, key=generated.full_key)

    async def list(self, *, session: AsyncSession, user: User) -> list[ApiKey]:
        rows = await session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user.id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
        return list(rows)

    async def revoke(
        self, *, session: AsyncSession, user: User, key_id: str, correlation_id: str | None
    ) -> None:
        record = await session.get(ApiKey, key_id) if is_valid_id(key_id) else None
        if record is None:
            raise NotFound("API key not found.")
        if record.user_id != user.id:
            # Still 404 (no existence leak), but on record as a try at someone else's key.
            denied = access_denied(correlation_id, user.id, "api_key", record.id)
            await self._events.commit(session, [denied])
            raise NotFound("API key not found.")
        # Conditional, so of two concurrent revokes exactly one revokes and writes the event;
        # revoking an already revoked key changes nothing and is not a second event.
        claimed = await session.execute(
            update(ApiKey)
            .where(ApiKey.id == record.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            await session.commit()
            return
        revoked = api_key_changed(correlation_id, record, revoked=True)
        await self._events.commit(session, [revoked])

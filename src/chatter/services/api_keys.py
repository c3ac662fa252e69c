"""API keys: the full key is returned once at creation; only its hash is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.ids import is_valid_id
from chatter.errors import BadRequest, NotFound
from chatter.services.credentials import generate_api_key
from chatter.storage.models import ApiKey, User

# Writing last_used_at on every request would make every read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedApiKey:
    record: ApiKey
    key: str


class ApiKeyService:
    async def create(
        self,
        *,
        session: AsyncSession,
        user: User,
        name: str,
        expires_at: datetime | None = None,
    ) -> CreatedApiKey:
        if expires_at is not None and expires_at.tzinfo is None:
            raise BadRequest("expires_at must include a UTC offset.")
        if expires_at is not None and expires_at <= utcnow():
            raise BadRequest("expires_at must be in the future.")
        generated = generate_api_key()
        record = ApiKey(
            user_id=user.id,
            name=name,
            prefix=generated.prefix,
            secret_hash=generated.secret_hash,
            expires_at=expires_at,
        )
        session.add(record)
        await session.commit()
        return CreatedApiKey(record=record, key=generated.full_key)

    async def list(self, *, session: AsyncSession, user: User) -> list[ApiKey]:
        rows = await session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user.id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
        return list(rows)

    async def revoke(self, *, session: AsyncSession, user: User, key_id: str) -> None:
        record = await session.get(ApiKey, key_id) if is_valid_id(key_id) else None
        if record is None or record.user_id != user.id:
            raise NotFound("API key not found.")
        if record.revoked_at is None:
            record.revoked_at = utcnow()
        await session.commit()

"""What admins do to accounts: list and read users, deactivate and reactivate them, change
their role, revoke any API key.

Deactivation ends every session of the user at once (token version bumped, refresh tokens
revoked) and refuses their API keys while inactive (keys are kept: reactivation makes them
work again; revoke them one by one to end them for good). Two guards keep the server
administrable: an admin cannot deactivate themselves, and the last active admin can be
neither deactivated nor demoted (409 `last_admin`). The admin rows are locked first, so two
admins demoting each other at once cannot both succeed (SQLite serialises writers anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.enums import UserRole
from chatter.domain.events import EventType
from chatter.domain.ids import is_valid_id
from chatter.errors import BadRequest, Conflict, NotFound
from chatter.events.publisher import EventPublisher
from chatter.services.auth import AuthService
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.services.security_events import account_changed, api_key_changed
from chatter.storage.models import ApiKey, User


class LastAdmin(Conflict):
    code = "last_admin"


class SelfDeactivation(Conflict):
    code = "cannot_deactivate_self"


@dataclass(frozen=True)
class UserFilter:
    email_contains: str | None = None
    role: UserRole | None = None
    active: bool | None = None


class UserAdminService:
    def __init__(self, auth: AuthService, events: EventPublisher) -> None:
        self._auth = auth
        self._events = events

    async def users(
        self, *, session: AsyncSession, criteria: UserFilter, limit: int, cursor: str | None
    ) -> Page[User]:
        query = select(User)
        if criteria.email_contains:
            # Stored lower-cased; `autoescape` keeps % and _ literal.
            needle = criteria.email_contains.strip().lower()
            query = query.where(User.email.contains(needle, autoescape=True))
        if criteria.role is not None:
            query = query.where(User.role == criteria.role.value)
        if criteria.active is not None:
            query = query.where(User.is_active.is_(criteria.active))
        if cursor is not None:
            query = _after_cursor(query, cursor)
        query = query.order_by(User.created_at.desc(), User.id.desc()).limit(limit + 1)
        rows = list(await session.scalars(query))
        await session.commit()
        items = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor([items[-1].created_at.isoformat(), items[-1].id])
        return Page(items=items, next_cursor=next_cursor)

    async def get(self, *, session: AsyncSession, user_id: str) -> User:
        user = await session.get(User, user_id) if is_valid_id(user_id) else None
        await session.commit()
        if user is None:
            raise NotFound("User not found.", details={"user_id": user_id})
        return user

    async def api_keys(self, *, session: AsyncSession, user_id: str) -> list[ApiKey]:
        await self.get(session=session, user_id=user_id)
        rows = await session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
        keys = list(rows)
        await session.commit()
        return keys

    async def set_active(
        self,
        *,
        session: AsyncSession,
        admin: User,
        user_id: str,
        active: bool,
        correlation_id: str | None,
    ) -> User:
        if not active and user_id == admin.id:
            raise SelfDeactivation("You cannot deactivate your own account.")
        admins = await self._active_admins_locked(session)
        user = await self._locked(session, user_id)
        if user.is_active == active:
            await session.commit()
            return user  # already so: nothing changes, no event
        if not active:
            await _keep_an_admin(session, admins, user.id)
        user.is_active = active
        if not active:
            user.token_version = await self._auth.end_all_sessions(session=session, user_id=user.id)
        event = account_changed(
            correlation_id,
            EventType.USER_REACTIVATED if active else EventType.USER_DEACTIVATED,
            user.id,
            admin.id,
        )
        await self._events.commit(session, [event])
        return user

    async def set_role(
        self,
        *,
        session: AsyncSession,
        admin: User,
        user_id: str,
        role: UserRole,
        correlation_id: str | None,
    ) -> User:
        admins = await self._active_admins_locked(session)
        user = await self._locked(session, user_id)
        previous = user.role
        if previous == role.value:
            await session.commit()
            return user
        await _keep_an_admin(session, admins, user.id)
        user.role = role.value
        event = account_changed(
            correlation_id,
            EventType.USER_ROLE_CHANGED,
            user.id,
            admin.id,
            previous=previous,
            role=role.value,
        )
        await self._events.commit(session, [event])
        return user

    async def revoke_api_key(
        self, *, session: AsyncSession, key_id: str, correlation_id: str | None
    ) -> None:
        record = await session.get(ApiKey, key_id) if is_valid_id(key_id) else None
        if record is None:
            await session.commit()
            raise NotFound("API key not found.", details={"key_id": key_id})
        # Conditional: of concurrent revokes exactly one writes the event.
        claimed = await session.execute(
            update(ApiKey)
            .where(ApiKey.id == record.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            await session.commit()
            return
        await self._events.commit(session, [api_key_changed(correlation_id, record, revoked=True)])

    async def _locked(self, session: AsyncSession, user_id: str) -> User:
        user = (
            await session.scalar(
                select(User)
                .where(User.id == user_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if is_valid_id(user_id)
            else None
        )
        if user is None:
            await session.commit()
            raise NotFound("User not found.", details={"user_id": user_id})
        return user

    async def _active_admins_locked(self, session: AsyncSession) -> list[str]:
        """Every active admin's id, their rows locked in id order, before the target's row
        is: concurrent changes queue here in one order (no deadlock), and each sees the
        admins as the one before it left them."""
        rows = await session.scalars(
            select(User.id)
            .where(User.role == UserRole.ADMIN.value, User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
        return list(rows)


async def _keep_an_admin(session: AsyncSession, active_admins: list[str], user_id: str) -> None:
    """Refuse to take `user_id` out of the active admins when it is the last of them."""
    if user_id in active_admins and len(active_admins) == 1:
        await session.commit()
        raise LastAdmin(
            "This is the last active admin: make another user admin first.",
            details={"user_id": user_id},
        )


def _after_cursor(query: Select[User], cursor: str) -> Select[User]:
    created_raw, last_id = decode_cursor(cursor, 2)
    invalid = BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    if not isinstance(created_raw, str) or not isinstance(last_id, str) or not is_valid_id(last_id):
        raise invalid
    try:
        created_at = datetime.fromisoformat(created_raw)
    except ValueError as exc:
        raise invalid from exc
    if created_at.tzinfo is None:
        raise invalid
    return query.where(
        or_(
            User.created_at < created_at,
            (User.created_at == created_at) & (User.id < last_id),
        )
    )

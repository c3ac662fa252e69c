"""Login, refresh-token rotation with reuse detection, logout, and bearer authentication."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.errors import Unauthorized
from chatter.services.accounts import normalise_email
from chatter.services.api_keys import LAST_USED_RESOLUTION
from chatter.services.credentials import (
    PasswordHasher,
    TokenIssuer,
    api_key_matches,
    parse_api_key_prefix,
)
from chatter.storage.models import ApiKey, RefreshToken, User

INVALID_CREDENTIALS = "Invalid email or password."


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class AuthService:
    def __init__(self, passwords: PasswordHasher, tokens: TokenIssuer) -> None:
        self._passwords = passwords
        self._tokens = tokens

    async def login(self, *, session: AsyncSession, email: str, password: str) -> TokenPair:
        user = await session.scalar(select(User).where(User.email == normalise_email(email)))
        # Don't hold the transaction (SQLite's write lock) while argon2 runs.
        await session.commit()
        if user is None:
            # Hash anyway so response time doesn't reveal which emails exist.
            await self._passwords.hash(password)
            raise Unauthorized(INVALID_CREDENTIALS)
        if not await self._passwords.verify(password, user.password_hash) or not user.is_active:
            raise Unauthorized(INVALID_CREDENTIALS)
        user.last_login_at = utcnow()
        pair = self._issue_pair(session, user.id, family_id=None)
        await session.commit()
        return pair

    async def refresh(self, *, session: AsyncSession, refresh_token: str) -> TokenPair:
        claims = self._tokens.decode(refresh_token, "refresh")
        record = await session.get(RefreshToken, claims.token_id)
        if record is None or record.revoked_at is not None:
            raise Unauthorized("Refresh token has been revoked.")
        # Claim the token atomically: of concurrent refreshes with one token, exactly one
        # wins; any other use of it is a reuse and ends the whole family.
        claimed = await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == record.id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            await self._revoke_family(session, record.family_id)
            await session.commit()
            raise Unauthorized("Refresh token was already used; all sessions of it are revoked.")
        user = await session.get(User, record.user_id)
        if user is None or not user.is_active:
            await session.commit()
            raise Unauthorized("User is inactive.")
        pair = self._issue_pair(session, user.id, family_id=record.family_id)
        await session.commit()
        return pair

    async def logout(self, *, session: AsyncSession, refresh_token: str) -> None:
        claims = self._tokens.decode(refresh_token, "refresh")
        record = await session.get(RefreshToken, claims.token_id)
        if record is None:
            raise Unauthorized("Refresh token is unknown.")
        await self._revoke_family(session, record.family_id)
        await session.commit()

    async def authenticate(self, *, session: AsyncSession, bearer: str) -> User:
        prefix = parse_api_key_prefix(bearer)
        if prefix is not None:
            user = await self._user_for_api_key(session, prefix, bearer)
        else:
            claims = self._tokens.decode(bearer, "access")
            user = await session.get(User, claims.subject)
        if user is None or not user.is_active:
            raise Unauthorized("User is unknown or inactive.")
        return user

    async def _user_for_api_key(self, session: AsyncSession, prefix: str, key: str) -> User | None:
        record = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if record is None or not api_key_matches(key, record.secret_hash):
            raise Unauthorized("API key is invalid.")
        now = utcnow()
        if record.revoked_at is not None:
            raise Unauthorized("API key has been revoked.")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized("API key has expired.")
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            record.last_used_at = now
            await session.commit()
        return await session.get(User, record.user_id)

    def _issue_pair(self, session: AsyncSession, user_id: str, family_id: str | None) -> TokenPair:
        access, _ = self._tokens.issue(user_id, "access")
        family = family_id or new_id()
        refresh, claims = self._tokens.issue(user_id, "refresh", family_id=family)
        session.add(
            RefreshToken(
                id=claims.token_id,
                user_id=user_id,
                family_id=family,
                expires_at=claims.expires_at,
            )
        )
        return TokenPair(access, refresh, int(self._tokens.access_ttl.total_seconds()))

    async def _revoke_family(self, session: AsyncSession, family_id: str) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

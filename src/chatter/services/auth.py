"""Login, refresh-token rotation with reuse detection, logout, and bearer authentication."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.clock import utcnow
from chatter.domain.events import EventType
from chatter.domain.ids import new_id
from chatter.errors import NotFound, Unauthorized, Unprocessable
from chatter.events.publisher import EventPublisher
from chatter.services.accounts import normalise_email
from chatter.services.api_keys import LAST_USED_RESOLUTION
from chatter.services.credentials import (
    API_KEY_PREFIX,
    CredentialRefused,
    PasswordHasher,
    TokenClaims,
    TokenIssuer,
    api_key_matches,
    parse_api_key_prefix,
)
from chatter.services.password_policy import PasswordPolicy
from chatter.services.security_events import (
    CredentialKind,
    LoginFailure,
    account_changed,
    login_failed,
    login_succeeded,
    token_refused,
)
from chatter.storage.models import ApiKey, RefreshToken, User

INVALID_CREDENTIALS = "Invalid email or password."


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class WrongPassword(Unprocessable):
    code = "wrong_password"


class AuthService:
    def __init__(
        self,
        passwords: PasswordHasher,
        tokens: TokenIssuer,
        events: EventPublisher,
        policy: PasswordPolicy,
    ) -> None:
        self._passwords = passwords
        self._tokens = tokens
        self._events = events
        self._policy = policy

    async def login(
        self, *, session: AsyncSession, email: str, password: str, correlation_id: str | None
    ) -> TokenPair:
        email = normalise_email(email)
        user = await session.scalar(select(User).where(User.email == email))
        # Don't hold the transaction (SQLite's write lock) while argon2 runs.
        await session.commit()
        failure = await self._login_failure(user, password)
        if failure is not None or user is None:
            user_id = user.id if user is not None else None
            failed = login_failed(correlation_id, email, failure or "unknown_email", user_id)
            await self._events.commit(session, [failed])
            raise Unauthorized(INVALID_CREDENTIALS)
        user.last_login_at = utcnow()
        pair = self.issue_pair(session, user, family_id=None)
        await self._events.commit(session, [login_succeeded(correlation_id, user.id)])
        return pair

    async def _login_failure(self, user: User | None, password: str) -> LoginFailure | None:
        if user is None:
            # Hash anyway so response time doesn't reveal which emails exist.
            await self._passwords.hash(password)
            return "unknown_email"
        if not await self._passwords.verify(password, user.password_hash):
            return "bad_password"
        return None if user.is_active else "inactive"

    async def refresh(
        self, *, session: AsyncSession, refresh_token: str, correlation_id: str | None
    ) -> TokenPair:
        async with self._refusals_recorded(session, "refresh_token", correlation_id):
            pair = await self._rotate(session, refresh_token)
        await session.commit()
        return pair

    async def _rotate(self, session: AsyncSession, refresh_token: str) -> TokenPair:
        """Refusals raise with their changes (a reused token's family revoked, a used token
        claimed) still pending, so the `token_refused` event commits with them."""
        record, claims = await self._refresh_record(session, refresh_token)
        if record.revoked_at is not None:
            raise CredentialRefused(
                "Refresh token has been revoked.", reason="revoked", user_id=record.user_id
            )
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
            raise CredentialRefused(
                "Refresh token was already used; all sessions of it are revoked.",
                reason="reused",
                user_id=record.user_id,
            )
        user = await session.get(User, record.user_id)
        if user is None or not user.is_active:
            raise CredentialRefused(
                "User is inactive.", reason="inactive_user", user_id=record.user_id
            )
        if claims.version != user.token_version:
            # Password changed, user deactivated, or logged out everywhere since.
            await self._revoke_family(session, record.family_id)
            raise CredentialRefused(
                "Session has ended; log in again.", reason="session_ended", user_id=user.id
            )
        return self.issue_pair(session, user, family_id=record.family_id)

    async def logout(
        self, *, session: AsyncSession, refresh_token: str, correlation_id: str | None
    ) -> None:
        async with self._refusals_recorded(session, "refresh_token", correlation_id):
            record, _ = await self._refresh_record(session, refresh_token)
        await self._revoke_family(session, record.family_id)
        await session.commit()

    async def logout_everywhere(
        self, *, session: AsyncSession, user: User, correlation_id: str | None
    ) -> None:
        await self.end_all_sessions(session=session, user_id=user.id)
        event = account_changed(correlation_id, EventType.SESSIONS_ENDED, user.id, user.id)
        await self._events.commit(session, [event])

    async def change_password(
        self,
        *,
        session: AsyncSession,
        user: User,
        current_password: str,
        new_password: str,
        correlation_id: str | None,
    ) -> TokenPair:
        """Ends every session (this one too) and starts a new one for the caller."""
        self._policy.check(new_password, email=user.email)
        # Don't hold the transaction (SQLite's write lock) while argon2 runs.
        await session.commit()
        if not await self._passwords.verify(current_password, user.password_hash):
            raise WrongPassword(
                "The current password is wrong.", details={"field": "current_password"}
            )
        new_hash = await self._passwords.hash(new_password)
        await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
        user.token_version = await self.end_all_sessions(session=session, user_id=user.id)
        pair = self.issue_pair(session, user, family_id=None)
        event = account_changed(correlation_id, EventType.PASSWORD_CHANGED, user.id, user.id)
        await self._events.commit(session, [event])
        return pair

    async def end_all_sessions(self, *, session: AsyncSession, user_id: str) -> int:
        """Bump the user's token version and revoke every refresh token (the caller commits):
        every access and refresh token issued so far stops working. The new version."""
        version = await session.scalar(
            update(User)
            .where(User.id == user_id)
            .values(token_version=User.token_version + 1)
            .returning(User.token_version)
        )
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if version is None:
            raise NotFound("User not found.", details={"user_id": user_id})
        return int(version)

    async def _refresh_record(
        self, session: AsyncSession, refresh_token: str
    ) -> tuple[RefreshToken, TokenClaims]:
        claims = self._tokens.decode(refresh_token, "refresh")
        record = await session.get(RefreshToken, claims.token_id)
        if record is None:
            raise CredentialRefused(
                "Refresh token is unknown.", reason="unknown", user_id=claims.subject
            )
        return record, claims

    async def authenticate(
        self, *, session: AsyncSession, bearer: str, correlation_id: str | None
    ) -> User:
        """The bearer's user. A valid credential writes nothing here (beyond an API key's
        coarse `last_used_at`); only a refused one costs a write, its `token_refused` event."""
        kind: CredentialKind = "api_key" if bearer.startswith(API_KEY_PREFIX) else "access_token"
        async with self._refusals_recorded(session, kind, correlation_id):
            if kind == "api_key":
                user = await self._user_for_api_key(session, bearer)
            else:
                user = await self._user_for_access_token(session, bearer)
        return user

    async def _user_for_access_token(self, session: AsyncSession, token: str) -> User:
        """One query, the one that loads the user anyway: its row carries the token version,
        and an EXISTS on the session's refresh-token family says whether it was ended. No
        cache, so a logout or a deactivation holds at once on every worker."""
        claims = self._tokens.decode(token, "access")
        if claims.family_id is None:
            # Issued before sessions were checked: refresh for a token that names its session.
            raise CredentialRefused(
                "Token is out of date; refresh it.", reason="stale", user_id=claims.subject
            )
        session_open = (
            select(RefreshToken.id)
            .where(RefreshToken.family_id == claims.family_id, RefreshToken.revoked_at.is_(None))
            .exists()
        )
        row = (
            await session.execute(select(User, session_open).where(User.id == claims.subject))
        ).first()
        user = _active(row[0] if row is not None else None)
        if claims.version != user.token_version or row is None or not row[1]:
            raise CredentialRefused(
                "Session has ended; log in again.", reason="session_ended", user_id=user.id
            )
        return user

    async def _user_for_api_key(self, session: AsyncSession, key: str) -> User:
        prefix = parse_api_key_prefix(key)
        if prefix is None:
            raise CredentialRefused("API key is invalid.", reason="malformed")
        record = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if record is None:
            raise CredentialRefused("API key is invalid.", reason="unknown")
        if not api_key_matches(key, record.secret_hash):
            # The prefix names a key but the secret does not prove it: no user to name.
            raise CredentialRefused("API key is invalid.", reason="bad_secret")
        now = utcnow()
        if record.revoked_at is not None:
            raise CredentialRefused(
                "API key has been revoked.", reason="revoked", user_id=record.user_id
            )
        if record.expires_at is not None and record.expires_at <= now:
            raise CredentialRefused(
                "API key has expired.", reason="expired", user_id=record.user_id
            )
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            record.last_used_at = now
            await session.commit()
        return _active(await session.get(User, record.user_id))

    @asynccontextmanager
    async def _refusals_recorded(
        self, session: AsyncSession, kind: CredentialKind, correlation_id: str | None
    ) -> AsyncIterator[None]:
        """On a refused credential: commit its `token_refused` event with whatever the
        refusal left pending, then let the 401 go on."""
        try:
            yield
        except CredentialRefused as refused:
            event = token_refused(correlation_id, kind, refused.reason, refused.user_id)
            await self._events.commit(session, [event])
            raise

    def issue_pair(self, session: AsyncSession, user: User, family_id: str | None) -> TokenPair:
        """A new session (`family_id` None) or the next pair of one; the caller commits."""
        family = family_id or new_id()
        version = user.token_version
        access, _ = self._tokens.issue(user.id, "access", family_id=family, version=version)
        refresh, claims = self._tokens.issue(user.id, "refresh", family_id=family, version=version)
        session.add(
            RefreshToken(
                id=claims.token_id,
                user_id=user.id,
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


def _active(user: User | None) -> User:
    if user is None:
        raise CredentialRefused("User is unknown or inactive.", reason="unknown_user")
    if not user.is_active:
        raise CredentialRefused(
            "User is unknown or inactive.", reason="inactive_user", user_id=user.id
        )
    return user

"""Requests and tokens per minute, per user and per API key, on the routes that call a
model; admins' per-user overrides.

A request is counted when it is admitted (before the turn opens); a turn's tokens are
counted when it has closed, from its execution's totals, whatever way it ended (a stream
the client left is counted too). A request is refused while a token window is spent."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal, NoReturn

import anyio
from limits.errors import StorageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import UserRole
from chatter.errors import Forbidden, NotFound, RateLimited
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnStarted
from chatter.services.rate_windows import Quota, RateWindows, window
from chatter.services.security_events import RateLimitScope, rate_limited
from chatter.settings import RateLimitSettings
from chatter.storage.models import User, WorkflowExecution

log = get_logger("chatter.rate_limits")
MINUTE = 60


@dataclass(frozen=True)
class Subject:
    """Whose windows a request counts in: its user's, and its API key's."""

    kind: Literal["user", "api_key"]
    id: str
    requests_per_minute: int
    tokens_per_minute: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.id)


@dataclass(frozen=True)
class Admission:
    subjects: tuple[Subject, ...]
    # The window closest to running out, for the RateLimit-* headers (None: limits off).
    quota: Quota | None


@dataclass(frozen=True)
class Refusal:
    scope: RateLimitScope
    subject: Subject
    quota: Quota  # of the window that refused


@dataclass(frozen=True)
class UserRateLimits:
    user_id: str
    requests_per_minute: int
    tokens_per_minute: int
    requests_per_minute_override: int | None
    tokens_per_minute_override: int | None


class RateLimitService:
    def __init__(
        self,
        windows: RateWindows,
        settings: RateLimitSettings,
        publisher: EventPublisher,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._windows = windows
        self._settings = settings
        self._publisher = publisher
        self._sessions = sessions

    def subjects(self, user: User, api_key_prefix: str | None) -> tuple[Subject, ...]:
        s = self._settings
        requests = user.rate_limit_requests_per_minute or s.requests_per_minute
        tokens = user.rate_limit_tokens_per_minute or s.tokens_per_minute
        found = [Subject("user", user.id, requests, tokens)]
        if api_key_prefix is not None:
            found.append(
                Subject(
                    "api_key",
                    api_key_prefix,
                    min(requests, s.api_key_requests_per_minute or requests),
                    min(tokens, s.api_key_tokens_per_minute or tokens),
                )
            )
        return tuple(found)

    async def admit(
        self,
        *,
        session: AsyncSession,
        user: User,
        api_key_prefix: str | None,
        correlation_id: str | None,
    ) -> Admission:
        """Count the request; refuse it (429, with a `rate_limited` event) when a request
        window is full or a token window spent. A storage outage lets requests through."""
        if not self._settings.enabled:
            return Admission((), None)
        subjects = self.subjects(user, api_key_prefix)
        try:
            checked = await self._check(subjects)
        except StorageError as exc:
            log.warning("rate_limit_storage_failed", error=repr(exc))
            return Admission(subjects, None)
        if isinstance(checked, Refusal):
            await self._refuse(session, checked, user.id, correlation_id)
        return Admission(subjects, checked)

    async def _check(self, subjects: tuple[Subject, ...]) -> Refusal | Quota | None:
        """A refusal, or the request window closest to running out."""
        for subject in subjects:
            tokens = window(subject.tokens_per_minute, MINUTE)
            if await self._windows.spent(tokens, "tokens", *subject.key):
                quota = await self._windows.quota(tokens, "tokens", *subject.key)
                return Refusal("tokens", subject, quota)
        closest: Quota | None = None
        for subject in subjects:
            allowed, quota = await self._windows.hit(
                window(subject.requests_per_minute, MINUTE), "requests", *subject.key
            )
            if not allowed:
                return Refusal("requests", subject, quota)
            if closest is None or quota.remaining < closest.remaining:
                closest = quota
        return closest

    async def _refuse(
        self, session: AsyncSession, refusal: Refusal, user_id: str, correlation_id: str | None
    ) -> NoReturn:
        subject, quota = refusal.subject, refusal.quota
        detail = {"key_prefix": subject.id} if subject.kind == "api_key" else None
        event = rate_limited(
            correlation_id,
            refusal.scope,
            subject.kind,
            limit=quota.limit,
            retry_after=quota.reset_after,
            user_id=user_id,
            detail=detail,
        )
        await self._publisher.commit(session, [event])
        raise RateLimited(
            f"Too many {refusal.scope} per minute for this {subject.kind.replace('_', ' ')}; "
            f"retry after {quota.reset_after} s.",
            retry_after=quota.reset_after,
            headers=quota.headers(),
        )

    async def metered(
        self, admission: Admission, stream: AsyncGenerator[TurnEvent]
    ) -> AsyncGenerator[TurnEvent]:
        """The turn's events; once it has closed, its tokens count in every window."""
        started: TurnStarted | None = None
        closed: TurnClosed | None = None
        try:
            async with aclosing(stream):
                async for event in stream:
                    if isinstance(event, TurnStarted):
                        started = event
                    elif isinstance(event, TurnClosed):
                        closed = event
                    yield event
        finally:
            if admission.subjects:
                # The caller may be leaving (a client that went away): count anyway.
                with anyio.CancelScope(shield=True):
                    await self._charge(admission, started, closed)

    async def _charge(
        self, admission: Admission, started: TurnStarted | None, closed: TurnClosed | None
    ) -> None:
        try:
            if closed is not None:
                tokens = closed.execution.total_tokens
            elif started is not None:
                # The stream ended before its TurnClosed was read; the close has committed
                # (the turn's stream waits for it), so the execution holds the totals.
                tokens = await self._execution_tokens(started.execution.id)
            else:
                return
            if tokens > 0:
                for subject in admission.subjects:
                    item = window(subject.tokens_per_minute, MINUTE)
                    await self._windows.add(item, "tokens", *subject.key, cost=tokens)
        except Exception as exc:  # a storage outage must not fail a turn already answered
            log.warning("rate_limit_charge_failed", error=repr(exc))

    async def _execution_tokens(self, execution_id: str) -> int:
        async with self._sessions() as session:
            total = await session.scalar(
                select(WorkflowExecution.total_tokens).where(WorkflowExecution.id == execution_id)
            )
        return int(total or 0)

    # --- admins' overrides ----------------------------------------------------------------

    async def user_limits(
        self, *, session: AsyncSession, admin: User, user_id: str
    ) -> UserRateLimits:
        return self._limits_of(await self._target(session, admin, user_id))

    async def set_user_limits(
        self,
        *,
        session: AsyncSession,
        admin: User,
        user_id: str,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
    ) -> UserRateLimits:
        """Replace the user's overrides (None: the server's default). Stored on the users
        row, which authentication reads anyway: effective at the user's next request, on
        every worker."""
        user = await self._target(session, admin, user_id)
        user.rate_limit_requests_per_minute = requests_per_minute
        user.rate_limit_tokens_per_minute = tokens_per_minute
        await session.commit()
        return self._limits_of(user)

    async def _target(self, session: AsyncSession, admin: User, user_id: str) -> User:
        if admin.role != UserRole.ADMIN.value:
            raise Forbidden("Only admins can read or set rate limits.")
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("User not found.")
        return user

    def _limits_of(self, user: User) -> UserRateLimits:
        (subject,) = self.subjects(user, None)
        return UserRateLimits(
            user.id,
            subject.requests_per_minute,
            subject.tokens_per_minute,
            user.rate_limit_requests_per_minute,
            user.rate_limit_tokens_per_minute,
        )

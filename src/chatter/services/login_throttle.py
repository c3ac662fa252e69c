"""Login throttling: failures per account (normalised email) and per client address lock
it out of logging in for a while; registrations are counted per client address.

A locked-out attempt is refused before its password is checked, so a correct password
during the lockout is refused the same way as a wrong one: the answer never tells which."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import NoReturn, TypeVar

from limits.errors import StorageError
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.errors import RateLimited, Unauthorized
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.services.accounts import normalise_email
from chatter.services.rate_windows import RateWindows, window
from chatter.services.security_events import RateLimitScope, RateLimitSubject, rate_limited
from chatter.settings import RateLimitSettings

log = get_logger("chatter.rate_limits")
HOUR = 3600
T = TypeVar("T")


async def let_through(step: Awaitable[T]) -> T | None:
    """A storage outage lets the request through (logged) rather than failing it."""
    try:
        return await step
    except StorageError as exc:
        log.warning("rate_limit_storage_failed", error=repr(exc))
        return None


class LoginThrottle:
    def __init__(
        self, windows: RateWindows, settings: RateLimitSettings, publisher: EventPublisher
    ) -> None:
        self._windows = windows
        self._settings = settings
        self._publisher = publisher

    @asynccontextmanager
    async def attempt(
        self, *, session: AsyncSession, email: str, client: str, correlation_id: str | None
    ) -> AsyncIterator[None]:
        """Around one login: refused while the account or the address is locked out; a
        failure (401) counts towards both lockouts, a success clears the account's count."""
        if not self._settings.enabled:
            yield
            return
        s = self._settings
        account = normalise_email(email)
        subjects: list[tuple[RateLimitSubject, str, int]] = [
            ("account", account, s.login_max_failures),
            ("ip", client, s.login_ip_max_failures),
        ]
        for kind, value, max_failures in subjects:
            retry_after = await let_through(self._locked_for(kind, value))
            if retry_after:
                await self._refuse(
                    session, "login", kind, value, max_failures, retry_after, correlation_id
                )
        try:
            yield
        except Unauthorized:
            for kind, value, max_failures in subjects:
                await let_through(self._failed(kind, value, max_failures))
            raise
        failures = window(s.login_max_failures, s.login_window_s)
        await let_through(self._windows.clear(failures, "login-failures", "account", account))

    async def check_register(
        self, *, session: AsyncSession, client: str, correlation_id: str | None
    ) -> None:
        """Count a registration from `client`; refused past the hourly limit."""
        if not self._settings.enabled:
            return
        limit = self._settings.register_per_ip_per_hour
        result = await let_through(self._windows.hit(window(limit, HOUR), "register", "ip", client))
        if result is not None and not result[0]:
            retry_after = result[1].reset_after
            await self._refuse(
                session, "register", "ip", client, limit, retry_after, correlation_id
            )

    async def _locked_for(self, kind: str, value: str) -> int:
        """Seconds the lockout has left (0: not locked)."""
        lock = window(1, self._settings.login_lockout_s)
        if not await self._windows.spent(lock, "login-lockout", kind, value):
            return 0
        return (await self._windows.quota(lock, "login-lockout", kind, value)).reset_after

    async def _failed(self, kind: str, value: str, max_failures: int) -> None:
        failures = window(max_failures, self._settings.login_window_s)
        await self._windows.add(failures, "login-failures", kind, value, cost=1)
        if await self._windows.spent(failures, "login-failures", kind, value):
            # Locked from now for the lockout; failures are counted afresh after it.
            lock = window(1, self._settings.login_lockout_s)
            await self._windows.add(lock, "login-lockout", kind, value, cost=1)
            await self._windows.clear(failures, "login-failures", kind, value)
            log.warning("login_locked_out", subject=kind)

    async def _refuse(
        self,
        session: AsyncSession,
        scope: RateLimitScope,
        kind: RateLimitSubject,
        value: str,
        limit: int,
        retry_after: int,
        correlation_id: str | None,
    ) -> NoReturn:
        detail = {"email": value} if kind == "account" else {"ip": value}
        event = rate_limited(
            correlation_id, scope, kind, limit=limit, retry_after=retry_after, detail=detail
        )
        await self._publisher.commit(session, [event])
        what = "failed logins" if scope == "login" else "registrations"
        raise RateLimited(f"Too many {what}; retry after {retry_after} s.", retry_after=retry_after)

"""Spend budgets: admins set them, users read their spend, and a turn is admitted only if
its estimate fits, reserved atomically (docs/budgets.md).

Admission is the only check: a user's admissions take their budget row's lock one at a
time, read spent (the rollups) and reserved (open reservations) in one statement, and
insert their reservation before releasing it, so concurrent turns never each pass a check
the others' reservations would fail. The turn's close deletes the reservation in the same
transaction that adds its actual usage to the rollups (services/budget_settlement.py); a
periodic sweep releases the reservations of turns that finished without it (recovered
after a crash) or never opened."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.budgets import (
    ZERO,
    Amount,
    Limits,
    Period,
    Refusal,
    Reservation,
    Spend,
    Window,
    refusal,
    windows,
)
from chatter.domain.clock import utcnow
from chatter.domain.events import DomainEvent, EventType
from chatter.domain.ids import new_id
from chatter.errors import BudgetExceeded, NotFound
from chatter.events.periodic import every
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.providers.pricing import Pricer
from chatter.services.budget_estimate import TurnPlan, estimate
from chatter.settings import BudgetSettings, LLMSettings
from chatter.storage import budgets
from chatter.storage.models import User

log = get_logger("chatter.budgets")
STOP_TIMEOUT_S = 10.0
_ADJECTIVE = {Period.DAY: "daily", Period.MONTH: "monthly"}


@dataclass(frozen=True)
class UsageReport:
    user_id: str
    limits: Limits
    updated_at: datetime | None
    windows: list[Window]
    spend: Spend


class BudgetService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        pricer: Pricer,
        settings: BudgetSettings,
        llm: LLMSettings,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._pricer = pricer
        self._settings = settings
        self._llm = llm
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- admission ----------------------------------------------------------------------

    async def reserve(self, *, session: AsyncSession, turn: TurnPlan) -> Reservation | None:
        """Reserve the turn's estimate, or refuse it (402, and a `budget_exceeded` security
        event - the only thing a refused turn writes). A user without a budget costs
        nothing here: `users.has_budget` came with the authenticated user."""
        if not turn.user.has_budget:
            return None
        guess = await estimate(
            session, turn, pricer=self._pricer, llm=self._llm, budgets=self._settings
        )
        now = utcnow()
        budget = await budgets.lock_budget(session, turn.user.id)
        limits = budgets.limits_of(budget)
        if not limits.any:
            await session.commit()
            return None
        # A price in another currency than the budget's counts against its tokens only.
        counted = guess.amount
        if guess.currency != limits.currency:
            counted = Amount(guess.amount.tokens, ZERO)
        spend = await budgets.spend(session, turn.user.id, windows(now), limits.currency)
        refused = refusal(limits, spend, counted, now)
        if refused is not None:
            event = budget_exceeded(turn.correlation_id, turn.user.id, refused, limits.currency)
            await self._publisher.commit(session, [event])
            raise BudgetExceeded(_message(refused, limits.currency), details=event.data)
        reservation = Reservation(new_id(), turn.user.id, new_id(), guess.amount)
        expires_at = now + timedelta(seconds=self._settings.reservation_ttl_s)
        await budgets.add_reservation(session, reservation, guess.currency, expires_at)
        await session.commit()
        return reservation

    async def release(self, reservation: Reservation | None) -> None:
        """Release the reservation of a turn that could not open; on failure the sweep
        releases it once it expires."""
        if reservation is None:
            return
        try:
            async with self._sessions() as session:
                await budgets.release(session, reservation.id)
                await session.commit()
        except Exception:
            log.exception("budget_release_failed", reservation_id=reservation.id)

    # --- the admin's and the user's view ------------------------------------------------

    async def set_budget(self, *, session: AsyncSession, user_id: str, limits: Limits) -> None:
        await _existing_user(session, user_id)
        await budgets.save_budget(session, user_id, limits)
        await session.commit()

    async def usage(self, *, session: AsyncSession, user_id: str) -> UsageReport:
        await _existing_user(session, user_id)
        budget = await budgets.get_budget(session, user_id)
        limits = budgets.limits_of(budget)
        periods = windows(utcnow())
        spend = await budgets.spend(session, user_id, periods, limits.currency)
        await session.commit()
        return UsageReport(
            user_id=user_id,
            limits=limits,
            updated_at=budget.updated_at if budget is not None else None,
            windows=list(periods.values()),
            spend=spend,
        )

    # --- the sweep ----------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(
            every(
                self._settings.sweep_interval_s,
                self.sweep_once,
                self._stopping,
                failure="budget_sweep_failed",
            )
        )

    async def aclose(self) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._task
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def sweep_once(self) -> int:
        async with self._sessions() as session:
            released = await budgets.release_expired(session, utcnow())
            await session.commit()
        if released:
            log.info("budget_reservations_released", count=released)
        return released


async def _existing_user(session: AsyncSession, user_id: str) -> None:
    if await session.get(User, user_id) is None:
        raise NotFound(f"User {user_id} not found.")


def budget_exceeded(
    correlation_id: str | None, user_id: str, refused: Refusal, currency: str
) -> DomainEvent:
    return DomainEvent(
        EventType.BUDGET_EXCEEDED,
        correlation_id,
        user_id=user_id,
        data={
            "period": refused.period.value,
            "kind": refused.kind,
            "limit": str(refused.limit),
            "spent": str(refused.spent),
            "reserved": str(refused.reserved),
            "requested": str(refused.requested),
            "currency": currency if refused.kind == "cost" else None,
            "resets_at": refused.resets_at.isoformat(),
        },
    )


def _message(refused: Refusal, currency: str) -> str:
    unit = f" {currency}" if refused.kind == "cost" else " tokens"
    return (
        f"This turn would exceed your {_ADJECTIVE[refused.period]} {refused.kind} budget "
        f"({refused.limit}{unit}): {refused.spent} spent, {refused.reserved} reserved by turns "
        f"in flight, {refused.requested} estimated for this one. It resets at "
        f"{refused.resets_at.isoformat()}."
    )

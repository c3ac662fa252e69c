"""A turn's close settles its reservation: deleted in the close's transaction, which adds
the turn's actual usage to the rollups, so spent + reserved never counts the turn twice
or not at all. Thresholds reached are announced once per period (the alert row's primary
key decides, however many closes race)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.budgets import Crossing, Limits, Period, Reservation, Spend, crossings, windows
from chatter.domain.clock import utcnow
from chatter.domain.events import DomainEvent, EventType
from chatter.storage import budgets


async def settle(
    session: AsyncSession,
    reservation: Reservation | None,
    *,
    correlation_id: str | None,
) -> list[DomainEvent]:
    """Call after `rollups.record_completion`, in the same transaction: the events of the
    thresholds this turn's usage reached."""
    if reservation is None:
        return []
    await budgets.release(session, reservation.id)
    limits = budgets.limits_of(await budgets.get_budget(session, reservation.user_id))
    if not limits.alert_thresholds or not limits.any:
        return []
    now = utcnow()
    spend = await budgets.spend(session, reservation.user_id, windows(now), limits.currency)
    events = []
    for crossing in crossings(limits, spend, now):
        if await budgets.mark_alert(
            session, reservation.user_id, crossing.window, crossing.basis_points
        ):
            events.append(threshold_reached(correlation_id, reservation, crossing, limits, spend))
    return events


def threshold_reached(
    correlation_id: str | None,
    reservation: Reservation,
    crossing: Crossing,
    limits: Limits,
    spend: Spend,
) -> DomainEvent:
    period: Period = crossing.window.period
    spent = spend.spent[period]
    token_limit, cost_limit = limits.tokens(period), limits.cost(period)
    return DomainEvent(
        EventType.BUDGET_THRESHOLD_REACHED,
        correlation_id,
        user_id=reservation.user_id,
        execution_id=reservation.execution_id,
        data={
            "period": period.value,
            "period_start": crossing.window.start.isoformat(),
            "resets_at": crossing.window.end.isoformat(),
            "threshold": crossing.threshold,
            "spent_tokens": spent.tokens,
            "limit_tokens": token_limit,
            "spent_cost": str(spent.cost),
            "limit_cost": None if cost_limit is None else str(cost_limit),
            "currency": limits.currency,
        },
    )

"""Spend budgets as values: limits per UTC period, what was spent and reserved, and the
rules that admit a turn or say which threshold a period has reached. No IO."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)
BASIS_POINTS = 10_000


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True)
class Window:
    period: Period
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive: when the period resets


def windows(now: datetime) -> dict[Period, Window]:
    """The UTC day and month `now` falls in."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {
        Period.DAY: Window(Period.DAY, day, day + timedelta(days=1)),
        Period.MONTH: Window(Period.MONTH, month, next_month),
    }


@dataclass(frozen=True)
class Limits:
    """A user's limits; None is unlimited."""

    daily_tokens: int | None = None
    daily_cost: Decimal | None = None
    monthly_tokens: int | None = None
    monthly_cost: Decimal | None = None
    currency: str = "USD"
    alert_thresholds: tuple[float, ...] = ()

    @property
    def any(self) -> bool:
        return any(
            limit is not None
            for limit in (
                self.daily_tokens,
                self.daily_cost,
                self.monthly_tokens,
                self.monthly_cost,
            )
        )

    def tokens(self, period: Period) -> int | None:
        return self.daily_tokens if period is Period.DAY else self.monthly_tokens

    def cost(self, period: Period) -> Decimal | None:
        return self.daily_cost if period is Period.DAY else self.monthly_cost


@dataclass(frozen=True)
class Amount:
    tokens: int = 0
    cost: Decimal = ZERO


@dataclass(frozen=True)
class Spend:
    """Spent per period (from the rollups) and reserved by turns in flight (counted against
    every period: a turn admitted before midnight may finish after it)."""

    spent: dict[Period, Amount] = field(default_factory=dict)
    reserved: Amount = Amount()
    open_reservations: int = 0


@dataclass(frozen=True)
class Reservation:
    """What an admitted turn holds against its user's budget until its close."""

    id: str
    user_id: str
    execution_id: str
    amount: Amount


@dataclass(frozen=True)
class Refusal:
    period: Period
    kind: str  # tokens | cost
    limit: int | Decimal
    spent: int | Decimal
    reserved: int | Decimal
    requested: int | Decimal
    resets_at: datetime


def refusal(limits: Limits, spend: Spend, estimate: Amount, now: datetime) -> Refusal | None:
    """The first limit that spent + reserved + this estimate would pass, if any."""
    for period, window in windows(now).items():
        spent = spend.spent.get(period, Amount())
        token_limit = limits.tokens(period)
        if token_limit is not None and (
            spent.tokens + spend.reserved.tokens + estimate.tokens > token_limit
        ):
            return Refusal(
                period,
                "tokens",
                token_limit,
                spent.tokens,
                spend.reserved.tokens,
                estimate.tokens,
                window.end,
            )
        cost_limit = limits.cost(period)
        if cost_limit is not None and spent.cost + spend.reserved.cost + estimate.cost > cost_limit:
            return Refusal(
                period,
                "cost",
                cost_limit,
                spent.cost,
                spend.reserved.cost,
                estimate.cost,
                window.end,
            )
    return None


@dataclass(frozen=True)
class Crossing:
    window: Window
    threshold: float

    @property
    def basis_points(self) -> int:
        return round(self.threshold * BASIS_POINTS)


def crossings(limits: Limits, spend: Spend, now: datetime) -> list[Crossing]:
    """Every (period, threshold) whose limit the spend has reached that fraction of."""
    found = []
    for period, window in windows(now).items():
        spent = spend.spent.get(period, Amount())
        fractions = []
        token_limit, cost_limit = limits.tokens(period), limits.cost(period)
        if token_limit:
            fractions.append(Decimal(spent.tokens) / Decimal(token_limit))
        if cost_limit:
            fractions.append(spent.cost / cost_limit)
        reached = max(fractions, default=ZERO)
        found += [
            Crossing(window, threshold)
            for threshold in limits.alert_thresholds
            if reached >= Decimal(str(threshold))
        ]
    return found

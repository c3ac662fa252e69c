"""Spend budget bodies: the admin's PUT, the budget, and a user's spend against it."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, field_validator

from chatter.api.schemas.common import NUMBER_ONLY, Money, RequestModel
from chatter.domain.budgets import Amount, Limits, Period, Window
from chatter.services.budgets import UsageReport

MAX_TOKENS_LIMIT = 10**15
CURRENCY_CODE = r"^[A-Z]{3}$"
# An amount as the API writes money: a decimal string that fits the Money columns
# (NUMERIC(28, 10)), never a float.
# Up to 99,999,999.9999999999: money is stored exactly (on SQLite in units of 1e-10, a
# 64-bit integer), so a larger limit would not fit; no budget needs more.
DECIMAL_TEXT = r"^[0-9]{1,8}(\.[0-9]{1,10})?$"


def _text_only(value: object) -> object:
    if not isinstance(value, str) or re.fullmatch(DECIMAL_TEXT, value) is None:
        raise ValueError('an amount is a decimal string of at most 8 integer digits, e.g. "12.50"')
    return value


CostLimit = Annotated[
    Decimal,
    BeforeValidator(_text_only),
    Field(ge=0, max_digits=28, decimal_places=10),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_TEXT}),
]
TokenLimit = Annotated[int, Field(ge=0, le=MAX_TOKENS_LIMIT), NUMBER_ONLY]
Threshold = Annotated[float, Field(gt=0, le=1), NUMBER_ONLY]


class BudgetIn(RequestModel):
    """Limits per UTC day and month; null (or left out) is unlimited. A turn is refused
    (402 `budget_exceeded`) when what was spent, plus what turns in flight reserved, plus
    its own estimate would pass a limit."""

    daily_tokens: TokenLimit | None = None
    daily_cost: CostLimit | None = None
    monthly_tokens: TokenLimit | None = None
    monthly_cost: CostLimit | None = None
    currency: str = Field(
        default="USD",
        pattern=CURRENCY_CODE,
        description="The currency of the cost limits: three capital letters (ISO 4217).",
    )
    alert_thresholds: list[Threshold] = Field(
        default_factory=list,
        max_length=10,
        description="Fractions of a limit (e.g. 0.8): each announces `budget_threshold_reached` "
        "once per period.",
    )

    @field_validator("alert_thresholds")
    @classmethod
    def _sorted(cls, value: list[float]) -> list[float]:
        return sorted(set(value))

    def limits(self) -> Limits:
        return Limits(
            daily_tokens=self.daily_tokens,
            daily_cost=self.daily_cost,
            monthly_tokens=self.monthly_tokens,
            monthly_cost=self.monthly_cost,
            currency=self.currency,
            alert_thresholds=tuple(self.alert_thresholds),
        )


class BudgetOut(BaseModel):
    user_id: str
    daily_tokens: int | None
    daily_cost: Money | None
    monthly_tokens: int | None
    monthly_cost: Money | None
    currency: str
    alert_thresholds: list[float]
    updated_at: datetime | None = Field(description="Null: no budget was ever set.")

    @classmethod
    def of(cls, user_id: str, limits: Limits, updated_at: datetime | None) -> BudgetOut:
        return cls(
            user_id=user_id,
            daily_tokens=limits.daily_tokens,
            daily_cost=limits.daily_cost,
            monthly_tokens=limits.monthly_tokens,
            monthly_cost=limits.monthly_cost,
            currency=limits.currency,
            alert_thresholds=list(limits.alert_thresholds),
            updated_at=updated_at,
        )


class PeriodUsageOut(BaseModel):
    period: str = Field(description="`day` or `month` (UTC).")
    start: datetime
    resets_at: datetime
    spent_tokens: int = Field(description="From the analytics rollups: finished turns.")
    spent_cost: Money = Field(description="Known costs in the budget's currency.")
    limit_tokens: int | None
    limit_cost: Money | None
    remaining_tokens: int | None = Field(description="Limit - spent - reserved, at least 0.")
    remaining_cost: Money | None


class ReservationsOut(BaseModel):
    count: int = Field(description="Turns in flight holding a reservation.")
    tokens: int
    cost: Money


class UsageReportOut(BaseModel):
    user_id: str
    currency: str
    budget: BudgetOut
    day: PeriodUsageOut
    month: PeriodUsageOut
    reservations: ReservationsOut

    @classmethod
    def of(cls, report: UsageReport) -> UsageReportOut:
        limits, spend = report.limits, report.spend
        periods = {
            window.period: _period(window, limits, spend.spent[window.period], spend.reserved)
            for window in report.windows
        }
        return cls(
            user_id=report.user_id,
            currency=limits.currency,
            budget=BudgetOut.of(report.user_id, limits, report.updated_at),
            day=periods[Period.DAY],
            month=periods[Period.MONTH],
            reservations=ReservationsOut(
                count=spend.open_reservations,
                tokens=spend.reserved.tokens,
                cost=spend.reserved.cost,
            ),
        )


def _period(window: Window, limits: Limits, spent: Amount, reserved: Amount) -> PeriodUsageOut:
    token_limit, cost_limit = limits.tokens(window.period), limits.cost(window.period)
    return PeriodUsageOut(
        period=window.period.value,
        start=window.start,
        resets_at=window.end,
        spent_tokens=spent.tokens,
        spent_cost=spent.cost,
        limit_tokens=token_limit,
        limit_cost=cost_limit,
        remaining_tokens=None
        if token_limit is None
        else max(0, token_limit - spent.tokens - reserved.tokens),
        remaining_cost=None
        if cost_limit is None
        else max(Decimal(0), cost_limit - spent.cost - reserved.cost),
    )

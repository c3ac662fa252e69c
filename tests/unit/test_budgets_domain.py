"""The budget rules as values: UTC periods, refusals, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from chatter.domain.budgets import Amount, Limits, Period, Spend, crossings, refusal, windows

NOW = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)


def test_periods_are_utc_days_and_months() -> None:
    periods = windows(NOW)
    assert periods[Period.DAY].start == datetime(2026, 12, 31, tzinfo=UTC)
    assert periods[Period.DAY].end == datetime(2027, 1, 1, tzinfo=UTC)
    assert periods[Period.MONTH].start == datetime(2026, 12, 1, tzinfo=UTC)
    assert periods[Period.MONTH].end == datetime(2027, 1, 1, tzinfo=UTC)
    # Another offset, the same instant: the same UTC periods.
    local = NOW.astimezone(timezone(timedelta(hours=5)))
    assert windows(local) == periods
    february = windows(datetime(2028, 2, 29, 12, tzinfo=UTC))[Period.MONTH]
    assert (february.start.day, february.end) == (1, datetime(2028, 3, 1, tzinfo=UTC))


def spend(day: int, month: int, reserved: int = 0, cost: str = "0") -> Spend:
    return Spend(
        spent={Period.DAY: Amount(day, Decimal(cost)), Period.MONTH: Amount(month, Decimal(cost))},
        reserved=Amount(reserved),
    )


def test_refusal_counts_spent_reserved_and_the_estimate() -> None:
    limits = Limits(daily_tokens=100, monthly_tokens=1000)
    assert refusal(limits, spend(50, 50, reserved=30), Amount(20), NOW) is None
    refused = refusal(limits, spend(50, 50, reserved=30), Amount(21), NOW)
    assert refused is not None
    assert (refused.period, refused.kind, refused.limit) == (Period.DAY, "tokens", 100)
    assert refused.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    monthly = refusal(limits, spend(0, 990), Amount(11), NOW)
    assert monthly is not None
    assert monthly.period is Period.MONTH
    cost = refusal(
        Limits(daily_cost=Decimal("1")), spend(0, 0, cost="0.9"), Amount(0, Decimal("0.2")), NOW
    )
    assert cost is not None
    assert cost.kind == "cost"
    assert refusal(Limits(), spend(10**9, 10**9), Amount(10**9), NOW) is None


def test_zero_limit_refuses_everything_but_nothing() -> None:
    limits = Limits(daily_tokens=0)
    assert refusal(limits, spend(0, 0), Amount(1), NOW) is not None
    assert refusal(limits, spend(0, 0), Amount(0), NOW) is None


def test_crossings_take_the_larger_fraction_per_period() -> None:
    limits = Limits(daily_tokens=100, daily_cost=Decimal("10"), alert_thresholds=(0.5, 0.8))
    found = crossings(limits, spend(40, 40, cost="8"), NOW)
    assert [(c.window.period, c.threshold, c.basis_points) for c in found] == [
        (Period.DAY, 0.5, 5000),
        (Period.DAY, 0.8, 8000),
    ]
    assert crossings(limits, spend(10, 10), NOW) == []

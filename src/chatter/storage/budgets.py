"""Budget rows: limits, reservations, announced thresholds, and a user's spend read from
the analytics rollups (`user_usage_days`), never from the messages."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.budgets import ZERO, Amount, Limits, Period, Reservation, Spend, Window
from chatter.domain.clock import utcnow
from chatter.domain.enums import ExecutionStatus
from chatter.storage.budget_tables import BudgetAlert, BudgetReservation, UserBudget
from chatter.storage.models import User, WorkflowExecution
from chatter.storage.rollup_tables import user_usage_days

_LIMIT_COLUMNS = ("daily_tokens", "daily_cost", "monthly_tokens", "monthly_cost")


def limits_of(budget: UserBudget | None) -> Limits:
    if budget is None:
        return Limits()
    return Limits(
        daily_tokens=budget.daily_tokens,
        daily_cost=budget.daily_cost,
        monthly_tokens=budget.monthly_tokens,
        monthly_cost=budget.monthly_cost,
        currency=budget.currency,
        alert_thresholds=tuple(float(t) for t in budget.alert_thresholds or ()),
    )


async def get_budget(session: AsyncSession, user_id: str) -> UserBudget | None:
    return await session.get(UserBudget, user_id, populate_existing=True)


async def lock_budget(session: AsyncSession, user_id: str) -> UserBudget | None:
    """The budget row, locked until commit (PostgreSQL `FOR UPDATE`; on SQLite the write
    transaction already excludes every other writer): admissions of one user check and
    reserve one at a time, so none passes a check another one's reservation would fail."""
    return await session.scalar(
        select(UserBudget)
        .where(UserBudget.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def save_budget(session: AsyncSession, user_id: str, limits: Limits) -> None:
    """Insert or replace the user's budget and set `users.has_budget` with it."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "daily_tokens": limits.daily_tokens,
        "daily_cost": limits.daily_cost,
        "monthly_tokens": limits.monthly_tokens,
        "monthly_cost": limits.monthly_cost,
        "currency": limits.currency,
        "alert_thresholds": list(limits.alert_thresholds),
        "updated_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(UserBudget).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["user_id"],
        set_={name: statement.excluded[name] for name in values if name != "user_id"},
    )
    await session.execute(statement)
    await session.execute(update(User).where(User.id == user_id).values(has_budget=limits.any))


async def spend(
    session: AsyncSession, user_id: str, windows: dict[Period, Window], currency: str
) -> Spend:
    """Spent today and this month, and the user's open reservations, in ONE statement: on
    PostgreSQL one snapshot, so a close committing meanwhile (its reservation gone, its
    usage in the rollups) is seen entirely or not at all."""
    day, month = windows[Period.DAY], windows[Period.MONTH]
    days = user_usage_days.c
    in_currency = days.currency == currency
    reservations = BudgetReservation.__table__.c
    mine = reservations.user_id == user_id
    row = (
        await session.execute(
            select(
                func.sum(case((days.day >= day.start, days.total_tokens), else_=0)),
                func.sum(case((and_(days.day >= day.start, in_currency), days.cost), else_=0)),
                func.sum(days.total_tokens),
                func.sum(case((in_currency, days.cost), else_=0)),
                select(func.count()).where(mine).scalar_subquery(),
                select(func.sum(reservations.tokens)).where(mine).scalar_subquery(),
                select(func.sum(reservations.cost))
                .where(mine, reservations.currency == currency)
                .scalar_subquery(),
            ).where(
                days.user_id == user_id,
                days.day >= month.start,
                days.day < month.end,
            )
        )
    ).one()
    day_tokens, day_cost, month_tokens, month_cost, count, reserved_tokens, reserved_cost = row
    return Spend(
        spent={
            Period.DAY: Amount(int(day_tokens or 0), _money(day_cost)),
            Period.MONTH: Amount(int(month_tokens or 0), _money(month_cost)),
        },
        reserved=Amount(int(reserved_tokens or 0), _money(reserved_cost)),
        open_reservations=int(count or 0),
    )


def _money(value: Any) -> Decimal:
    # Money loads as Decimal; a NULL sum, or an aggregate SQLite returns untyped, as 0.
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return Decimal(int(value)).scaleb(-10)


async def add_reservation(
    session: AsyncSession, reservation: Reservation, currency: str, expires_at: datetime
) -> None:
    session.add(
        BudgetReservation(
            id=reservation.id,
            user_id=reservation.user_id,
            execution_id=reservation.execution_id,
            tokens=reservation.amount.tokens,
            cost=reservation.amount.cost,
            currency=currency,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def release(session: AsyncSession, reservation_id: str) -> bool:
    """Delete it; False when it was already released (by the sweep)."""
    result = await session.execute(
        delete(BudgetReservation).where(BudgetReservation.id == reservation_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release_expired(session: AsyncSession, now: datetime) -> int:
    """Reservations whose turn is over without its close releasing them (recovery closed
    it after a crash, or the close's rollback), and expired ones whose turn never opened
    (the client left before the stream started, the process died). A turn still running
    keeps its reservation however long it takes."""
    execution = select(WorkflowExecution.id).where(
        WorkflowExecution.id == BudgetReservation.execution_id
    )
    running = exists(execution.where(WorkflowExecution.status == ExecutionStatus.RUNNING.value))
    finished = exists(execution.where(WorkflowExecution.status != ExecutionStatus.RUNNING.value))
    result = await session.execute(
        delete(BudgetReservation)
        .where(or_(finished, and_(BudgetReservation.expires_at < now, ~running)))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_alert(
    session: AsyncSession, user_id: str, window: Window, basis_points: int
) -> bool:
    """True the first time this threshold is marked for this period (and only then, however
    many closes race: the primary key decides)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(BudgetAlert)
        .values(
            user_id=user_id,
            period=window.period.value,
            period_start=window.start,
            threshold_bp=basis_points,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(BudgetAlert.threshold_bp)
    )
    return (await session.execute(statement)).first() is not None

"""Spend budgets: each user's limits, the reservations of turns in flight, and the alert
thresholds already announced (see storage/budgets.py and docs/budgets.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.storage.models import Base
from chatter.storage.types import Money, UTCDateTime


class UserBudget(Base):
    """A user's limits; a null limit is unlimited. Its row is also the lock admissions of
    that user take, one at a time, to check and reserve."""

    __tablename__ = "user_budgets"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    daily_tokens: Mapped[int | None] = mapped_column(BigInteger)
    daily_cost: Mapped[Decimal | None] = mapped_column(Money())
    monthly_tokens: Mapped[int | None] = mapped_column(BigInteger)
    monthly_cost: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(8), default="USD", nullable=False)
    # Fractions of a limit (0 < t <= 1), ascending, announced once per period each.
    alert_thresholds: Mapped[list[Any]] = mapped_column(JSON, default=list, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class BudgetReservation(Base):
    """What an admitted turn may still spend. Deleted by the turn's close (its actual usage
    reaches the rollups in the same transaction), or by the sweep once it expired and its
    execution is not running (a crash, a turn that never opened)."""

    __tablename__ = "budget_reservations"
    __table_args__ = (
        Index("ix_budget_reservations_user_id", "user_id"),
        Index("ix_budget_reservations_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # The id the turn's execution will have (chosen at admission; no foreign key: the
    # execution row is written later, by the turn's open).
    execution_id: Mapped[str] = mapped_column(String(26), nullable=False)
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cost: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    currency: Mapped[str] = mapped_column(String(8), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class BudgetAlert(Base):
    """One row per threshold announced: the primary key makes the announcement happen once
    per user, period and threshold (`INSERT ... ON CONFLICT DO NOTHING`)."""

    __tablename__ = "budget_alerts"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # day | month
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    threshold_bp: Mapped[int] = mapped_column(Integer, primary_key=True)  # basis points
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP"), nullable=False
    )

"""spend budgets: user_budgets, budget_reservations, budget_alerts, users.has_budget

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatter.storage.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money() -> chatter.storage.types.Money:
    return chatter.storage.types.Money(precision=28, scale=10)


def _moment() -> chatter.storage.types.UTCDateTime:
    return chatter.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user_budgets",
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("daily_tokens", sa.BigInteger(), nullable=True),
        sa.Column("daily_cost", _money(), nullable=True),
        sa.Column("monthly_tokens", sa.BigInteger(), nullable=True),
        sa.Column("monthly_cost", _money(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("alert_thresholds", sa.JSON(), nullable=False),
        sa.Column("updated_at", _moment(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_budgets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_budgets")),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("execution_id", sa.String(length=26), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", _money(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("expires_at", _moment(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_budget_reservations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_reservations")),
    )
    with op.batch_alter_table("budget_reservations", schema=None) as batch_op:
        batch_op.create_index("ix_budget_reservations_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_budget_reservations_expires_at", ["expires_at"], unique=False)
    op.create_table(
        "budget_alerts",
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", _moment(), nullable=False),
        sa.Column("threshold_bp", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", _moment(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_budget_alerts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "user_id", "period", "period_start", "threshold_bp", name=op.f("pk_budget_alerts")
        ),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("has_budget", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("has_budget")
    op.drop_table("budget_alerts")
    with op.batch_alter_table("budget_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_budget_reservations_expires_at")
        batch_op.drop_index("ix_budget_reservations_user_id")
    op.drop_table("budget_reservations")
    op.drop_table("user_budgets")

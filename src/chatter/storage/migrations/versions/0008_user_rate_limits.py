"""per-user rate limit overrides, set by admins

On the users row: authentication loads it anyway, so reading them costs no query.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the server's default (CHATTER_RATE_LIMITS__...).
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rate_limit_requests_per_minute", sa.Integer(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("rate_limit_tokens_per_minute", sa.BigInteger(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_tokens_per_minute")
        batch_op.drop_column("rate_limit_requests_per_minute")

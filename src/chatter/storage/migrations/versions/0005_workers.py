"""workers and execution owners (several workers; recovery by heartbeat and lease)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 10:02:13.514217
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatter.storage.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", chatter.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", chatter.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    # Executions already running have no owner: the first recovery pass closes them, as
    # startup recovery did before workers had ids.
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.String(length=26), nullable=True))
        batch_op.create_index(
            "ix_workflow_executions_running_owner",
            ["owner_id"],
            unique=False,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_workflow_executions_running_owner",
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.drop_column("owner_id")

    op.drop_table("workers")

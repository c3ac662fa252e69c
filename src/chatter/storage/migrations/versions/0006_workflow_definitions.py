"""workflow definitions and their versions; executions record the version and node timings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatter.storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_definitions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", chatter.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", chatter.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", chatter.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_workflow_definitions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_definitions")),
    )
    op.create_index(
        "ix_workflow_definitions_user_updated",
        "workflow_definitions",
        ["user_id", "updated_at"],
        unique=False,
    )
    op.create_table(
        "workflow_definition_versions",
        sa.Column("definition_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", chatter.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["workflow_definitions.id"],
            name=op.f("fk_workflow_definition_versions_definition_id_workflow_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "definition_id", "version", name=op.f("pk_workflow_definition_versions")
        ),
    )
    # Plain ADD COLUMNs (no table rebuild on SQLite): both nullable.
    op.add_column(
        "workflow_executions", sa.Column("definition_version", sa.Integer(), nullable=True)
    )
    op.add_column("workflow_executions", sa.Column("node_timings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_column("node_timings")
        batch_op.drop_column("definition_version")
    op.drop_table("workflow_definition_versions")
    op.drop_index("ix_workflow_definitions_user_updated", table_name="workflow_definitions")
    op.drop_table("workflow_definitions")

"""Preferences per member and category, the meeting copy's state (status, versions of its fields and agenda), and
the last agenda notice per meeting

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:30:00
"""

import sqlalchemy as sa
from alembic import op

from netvaerk_shared.db import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="scheduled"))
        batch_op.add_column(sa.Column("fields_sequence", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("agenda_sequence", sa.Integer(), nullable=True))
    op.create_table(
        "agenda_notices",
        sa.Column("meeting_id", sa.Uuid(), primary_key=True),
        sa.Column("last_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", "category"),
    )


def downgrade() -> None:
    op.drop_table("preferences")
    op.drop_table("agenda_notices")
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.drop_column("agenda_sequence")
        batch_op.drop_column("fields_sequence")
        batch_op.drop_column("status")

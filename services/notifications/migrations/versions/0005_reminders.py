"""Reminders and nudges: planned reminder rows, each member's latest answer per meeting, reminder settings per
group, and the roster's memory of who left

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:45:00
"""

import sqlalchemy as sa
from alembic import op

from netvaerk_shared.db import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("joined_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("left_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("role_at", UtcDateTime(), nullable=True))
    op.create_table(
        "rsvps",
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("response", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("waitlist_position", sa.Integer(), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("meeting_id", "member_id"),
    )
    with op.batch_alter_table("rsvps", schema=None) as batch_op:
        batch_op.create_index("ix_rsvps_member", ["member_id"], unique=False)
    op.create_table(
        "reminder_settings",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("reminder_days", sa.JSON(), nullable=False),
        sa.Column("nudge_days", sa.Integer(), nullable=True),
        sa.Column("local_hour", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("group_id"),
    )
    op.create_table(
        "reminders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("done_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("meeting_id", "kind", "days_before", "starts_at", name="uq_reminders_once"),
    )
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.create_index("ix_reminders_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    op.drop_table("reminders")
    op.drop_table("reminder_settings")
    op.drop_table("rsvps")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("role_at")
        batch_op.drop_column("left_at")
        batch_op.drop_column("joined_at")

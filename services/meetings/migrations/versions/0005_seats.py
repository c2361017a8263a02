"""RSVP, waiting lists, attendance, the roster's organisations

`group_members.left_at`: a member who left stays as a row (a late, older MemberJoined must not bring them back);
`member_organisations`: the organisation id of each member (no contact data); `rsvps` with the order answers were
decided in (the waiting list's order); `attendance`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:35:00
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
        batch_op.add_column(sa.Column("left_at", UtcDateTime(), nullable=True))
    op.create_table(
        "member_organisations",
        sa.Column("member_id", sa.Uuid(), primary_key=True),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_member_organisations_organisation_id", "member_organisations", ["organisation_id"])
    op.create_table(
        "rsvps",
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("response", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("arrival", sa.Integer(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=False),
        sa.Column("on_behalf_of", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["meeting_id"], ["meetings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("meeting_id", "member_id"),
    )
    op.create_index("ix_rsvps_member_id", "rsvps", ["member_id"])
    op.create_table(
        "attendance",
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["meeting_id"], ["meetings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("meeting_id", "member_id"),
    )
    op.create_index("ix_attendance_member_id", "attendance", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_attendance_member_id", table_name="attendance")
    op.drop_table("attendance")
    op.drop_index("ix_rsvps_member_id", table_name="rsvps")
    op.drop_table("rsvps")
    op.drop_index("ix_member_organisations_organisation_id", table_name="member_organisations")
    op.drop_table("member_organisations")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("left_at")

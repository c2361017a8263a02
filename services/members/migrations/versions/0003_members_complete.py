"""members complete: members' own membership status and consents, organisations' association membership, group
status, and join requests (pending approval or on the waiting list).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from netvaerk_shared.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=10), server_default="active", nullable=False))
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("membership_status", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("membership_valid_until", sa.Date(), nullable=True))
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=10), server_default="open", nullable=False))
    op.create_table(
        "consents",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("given_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id", "kind"),
    )
    op.create_table(
        "join_requests",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("group_id", "member_id"),
    )
    with op.batch_alter_table("join_requests", schema=None) as batch_op:
        batch_op.create_index("ix_join_requests_member_id", ["member_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("join_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_join_requests_member_id")
    op.drop_table("join_requests")
    op.drop_table("consents")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("status")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("membership_valid_until")
        batch_op.drop_column("membership_status")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("status")

"""topic proposals, calendar feed tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:35:00
"""

import sqlalchemy as sa
from alembic import op

from netvaerk_shared.db import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("for_meeting_id", sa.Uuid(), nullable=True),
        sa.Column("speaker", sa.String(200), nullable=True),
        sa.Column("speaker_organisation", sa.String(200), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("submitted_at", UtcDateTime(), nullable=False),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("meeting_id", sa.Uuid(), nullable=True),
        sa.Column("agenda_position", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_proposals_group_id", "proposals", ["group_id"])
    op.create_index("ix_proposals_member_id", "proposals", ["member_id"])
    op.create_table(
        "proposal_backers",
        sa.Column("proposal_id", sa.Uuid(), sa.ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Uuid(), primary_key=True),
        sa.Column("backed_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_proposal_backers_member_id", "proposal_backers", ["member_id"])
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_calendar_feeds_member_id", "calendar_feeds", ["member_id"])
    op.create_index("ix_calendar_feeds_created_by", "calendar_feeds", ["created_by"])


def downgrade() -> None:
    op.drop_table("calendar_feeds")
    op.drop_table("proposal_backers")
    op.drop_table("proposals")

"""The gateway's own tables: single-use sign-in links, sessions, administrators

Only hashes of the secrets are stored (a stolen copy of the database opens no session and no link). Every row names
a member id and nothing else of the person.

Revision ID: 0001
Revises:
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
from alembic import op

from netvaerk_shared.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_links",
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("link_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_sign_in_links_member", "sign_in_links", ["member_id", "created_at"])
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_sessions_member", "sessions", ["member_id"])
    op.create_table(
        "administrators",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id"),
    )


def downgrade() -> None:
    op.drop_table("administrators")
    op.drop_index("ix_sessions_member", "sessions")
    op.drop_table("sessions")
    op.drop_index("ix_sign_in_links_member", "sign_in_links")
    op.drop_table("sign_in_links")

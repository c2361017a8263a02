"""GDPR erasure: the ids of the members erased here, and when

A repeated `POST /members/{id}/erasure` answers 202 with the original `erased_at` (and publishes nothing again)
instead of a 404. The table holds the member's id and the time only, never anything of the person: it is the proof
of the erasure. Members erased before this migration are not in it (nothing of them is left to fill it from): a
repeated request for one of them still answers 404.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
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
        "erased_members",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("erased_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id"),
    )


def downgrade() -> None:
    op.drop_table("erased_members")

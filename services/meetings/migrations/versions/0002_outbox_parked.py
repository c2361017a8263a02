"""outbox: parked rows

A row the relay can never publish as it is (larger than the server's max_payload, a subject this service may not
publish to, refused by JetStream for itself) is parked: `parked_at` is set and the relay goes on with the rest.
The relay's index covers only rows that are neither published nor parked; a second, small index finds the parked.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from netvaerk_shared.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING = "published_at IS NULL AND parked_at IS NULL"
PARKED = "parked_at IS NOT NULL"
UNPUBLISHED = "published_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parked_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unpublished", postgresql_where=sa.text(UNPUBLISHED), sqlite_where=sa.text(UNPUBLISHED)
        )
        batch_op.create_index(
            "ix_outbox_pending",
            ["position"],
            unique=False,
            postgresql_where=sa.text(PENDING),
            sqlite_where=sa.text(PENDING),
        )
        batch_op.create_index(
            "ix_outbox_parked",
            ["position"],
            unique=False,
            postgresql_where=sa.text(PARKED),
            sqlite_where=sa.text(PARKED),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_parked", postgresql_where=sa.text(PARKED), sqlite_where=sa.text(PARKED))
        batch_op.drop_index("ix_outbox_pending", postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
        batch_op.create_index(
            "ix_outbox_unpublished",
            ["position"],
            unique=False,
            postgresql_where=sa.text(UNPUBLISHED),
            sqlite_where=sa.text(UNPUBLISHED),
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("parked_at")

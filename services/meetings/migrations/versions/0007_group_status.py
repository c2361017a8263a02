"""The group copy follows group.updated: its name, slug and region as they are now, and its status

An archived group (status "archived", which the members service never reopens) takes no new meetings or series.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="open"))


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("status")

"""On a delivery, what its message carries that must not outlive it (a sign-in link): kept apart from the payload and
blanked once the delivery is sent or has failed for good

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-12 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("secret")

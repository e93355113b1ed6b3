"""Webhook: the pages a maintenance window held back, recorded on the alert.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_alerts", sa.Column("held_back", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("webhook_alerts") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("held_back")

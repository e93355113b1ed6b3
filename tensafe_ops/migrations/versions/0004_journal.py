"""Webhook: the notification journal (accepted notifications not yet ingested) and, for a
journal kept in its own SQLite file, the ids applied but maybe not yet deleted there.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_notifications",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sqlite_autoincrement=True,  # rows are deleted: without it SQLite reuses their ids
    )
    op.create_index("ix_webhook_notifications_state", "webhook_notifications", ["state", "id"])
    op.create_table(
        "webhook_journal_applied", sa.Column("id", _ID, primary_key=True, autoincrement=False)
    )


def downgrade() -> None:
    op.drop_table("webhook_journal_applied")
    op.drop_table("webhook_notifications")

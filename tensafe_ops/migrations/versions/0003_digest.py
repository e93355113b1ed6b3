"""Webhook: alerts waiting for a Slack digest (`slack_digest:<destination>` targets).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_digest_items",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("digested_at", sa.Float),
        sa.Column("delivery_id", sa.BigInteger),
        sa.UniqueConstraint("alert_id", "destination", name="uq_webhook_digest_items_alert"),
    )
    op.create_index(
        "ix_webhook_digest_items_pending",
        "webhook_digest_items",
        ["destination", "state", "id"],
    )


def downgrade() -> None:
    op.drop_table("webhook_digest_items")

"""Webhook: alerts, seen notifications, the deliveries outbox, maintenance windows and
PagerDuty webhook ids.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_alerts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("starts_at_us", sa.BigInteger, nullable=False),
        sa.Column("alertname", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("generator_url", sa.Text, nullable=False),
        sa.Column("external_url", sa.Text, nullable=False),
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("routes", sa.Text, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float),
        sa.Column("first_received_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("repeat_gap_max", sa.Float),
        sa.Column("respond_by", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float),
        sa.Column("closed_at", sa.Float),
        sa.Column("acked_at", sa.Float),
        sa.Column("acked_by", sa.Text),
        sa.Column("ack_note", sa.Text),
        sa.Column("ack_source", sa.String(16)),
        sa.Column("breached", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("maintenance_id", sa.BigInteger),
        sa.Column("pd_dedup_key", sa.String(255), nullable=False),
        sa.UniqueConstraint("fingerprint", "starts_at_us", name="uq_webhook_alerts_occurrence"),
    )
    op.create_index("ix_webhook_alerts_state", "webhook_alerts", ["state", "severity"])
    op.create_index("ix_webhook_alerts_pd_key", "webhook_alerts", ["pd_dedup_key"])
    op.create_table(
        "webhook_seen",
        sa.Column("fingerprint", sa.String(16), primary_key=True),
        sa.Column("starts_at_us", sa.BigInteger, primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("first_seen_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["target", "state", "not_before"]
    )
    op.create_index("ix_webhook_deliveries_alert", "webhook_deliveries", ["alert_id"])
    op.create_table(
        "webhook_maintenance",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("matchers", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhook_pagerduty_events",
        sa.Column("webhook_id", sa.String(255), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_pagerduty_events")
    op.drop_table("webhook_maintenance")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_seen")
    op.drop_table("webhook_alerts")

"""The webhook's tables (SQLAlchemy Core). Timestamps are UTC epoch seconds (float), which
SQLite and PostgreSQL store and compare alike; migrations 0002 to 0005 create exactly these."""

import sqlalchemy as sa

metadata = sa.MetaData()
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

alerts = sa.Table(
    "webhook_alerts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
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
    sa.Column("held_back", sa.Text),  # JSON: pages a maintenance window held back (0005)
    sa.Column("pd_dedup_key", sa.String(255), nullable=False),
    sa.UniqueConstraint("fingerprint", "starts_at_us", name="uq_webhook_alerts_occurrence"),
    sa.Index("ix_webhook_alerts_state", "state", "severity"),
    sa.Index("ix_webhook_alerts_pd_key", "pd_dedup_key"),
)

seen = sa.Table(
    "webhook_seen",
    metadata,
    sa.Column("fingerprint", sa.String(16), primary_key=True),
    sa.Column("starts_at_us", sa.BigInteger, primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("first_seen_at", sa.Float, nullable=False),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
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
    sa.Index("ix_webhook_deliveries_due", "target", "state", "not_before"),
    sa.Index("ix_webhook_deliveries_alert", "alert_id"),
)

maintenance = sa.Table(
    "webhook_maintenance",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("matchers", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

pagerduty_webhooks = sa.Table(
    "webhook_pagerduty_events",
    metadata,
    sa.Column("webhook_id", sa.String(255), primary_key=True),  # SHA-256 hex of X-Webhook-Id
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)

digest_items = sa.Table(
    "webhook_digest_items",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger, nullable=False),
    sa.Column("destination", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending, then digested
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("digested_at", sa.Float),
    sa.Column("delivery_id", sa.BigInteger),  # the outbox row of the digest that listed it
    sa.UniqueConstraint("alert_id", "destination", name="uq_webhook_digest_items_alert"),
    sa.Index("ix_webhook_digest_items_pending", "destination", "state", "id"),
)

notifications = sa.Table(
    "webhook_notifications",
    metadata,
    # The journal: each accepted notification as received, stored before the 2xx and deleted
    # in the transaction that writes the alerts and deliveries it causes (webhook.ingest).
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending, or failed (kept for a human)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_webhook_notifications_state", "state", "id"),
    sqlite_autoincrement=True,  # rows are deleted: without it SQLite would reuse their ids
)

journal_applied = sa.Table(
    "webhook_journal_applied",
    metadata,
    # Entries of a SQLite journal file (webhook.journal_sqlite) applied by a committed ingest
    # transaction and maybe not yet deleted from that file: the two files commit separately.
    sa.Column("id", Id, primary_key=True, autoincrement=False),
)

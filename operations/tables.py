"""The operator part's tables (SQLAlchemy Core); migration 0006 creates exactly these.
Timestamps are UTC epoch seconds (float), days are UTC dates as YYYY-MM-DD text."""

import sqlalchemy as sa

metadata = sa.MetaData()
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

daily = sa.Table(
    "operator_daily",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    # JSON: the key numbers at the morning snapshot (pulse compares against them).
    sa.Column("morning", sa.Text),
    sa.Column("morning_at", sa.Float),
    # JSON: the key numbers, the daily summary and the checklist's data answers of the day.
    sa.Column("record", sa.Text),
    sa.Column("recorded_at", sa.Float),
    # When the summary was queued for Slack (at most once a day).
    sa.Column("posted_at", sa.Float),
)

marks = sa.Table(
    "operator_checklist_marks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("step", sa.String(128), nullable=False),
    sa.Column("by", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_operator_checklist_marks_day", "day", "step"),
)

events = sa.Table(
    "operator_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("communicated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_operator_events_time", "starts_at", "ends_at"),
)

"""Operator API: the daily record, checklist marks and the planned-events calendar.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "operator_daily",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("morning", sa.Text),
        sa.Column("morning_at", sa.Float),
        sa.Column("record", sa.Text),
        sa.Column("recorded_at", sa.Float),
        sa.Column("posted_at", sa.Float),
    )
    op.create_table(
        "operator_checklist_marks",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("step", sa.String(128), nullable=False),
        sa.Column("by", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_operator_checklist_marks_day", "operator_checklist_marks", ["day", "step"])
    op.create_table(
        "operator_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("communicated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_operator_events_time", "operator_events", ["starts_at", "ends_at"])


def downgrade() -> None:
    op.drop_table("operator_events")
    op.drop_table("operator_checklist_marks")
    op.drop_table("operator_daily")

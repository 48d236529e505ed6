"""Monitoring audit tables: monitor_events (rule firings and action results), monitor_metrics (metrics per pass).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("comparison", sa.String(2), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
    )
    op.create_index("ix_monitor_events_model_rule_as_of", "monitor_events", ["model", "rule", "as_of"])
    op.create_index("ix_monitor_events_at", "monitor_events", ["at"])
    op.create_table(
        "monitor_metrics",
        sa.Column("as_of", sa.Date(), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("window", sa.String(200), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitor_metrics")
    op.drop_index("ix_monitor_events_at", table_name="monitor_events")
    op.drop_index("ix_monitor_events_model_rule_as_of", table_name="monitor_events")
    op.drop_table("monitor_events")

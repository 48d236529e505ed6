"""Initial service schema: predictions, api_keys, audit.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Self-contained on purpose (no import of the live table definitions): a migration describes the schema as it was.
Timestamps are stored in UTC (``timestamptz`` on PostgreSQL, naive UTC text on SQLite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("input_kind", sa.String(16), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=False),  # float64 little-endian, model feature order
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("champion_version", sa.String(32), nullable=True),
        sa.Column("champion_signal", sa.String(16), nullable=True),
        sa.Column("champion_proba", sa.JSON(), nullable=True),
        sa.Column("challenger_version", sa.String(32), nullable=True),
        sa.Column("challenger_signal", sa.String(16), nullable=True),
        sa.Column("challenger_proba", sa.JSON(), nullable=True),
        sa.Column("answered_by", sa.String(16), nullable=False),
        sa.Column("routing_mode", sa.String(16), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
    )
    op.create_index("ix_predictions_received_at", "predictions", ["received_at"])
    op.create_index("ix_predictions_model_received_at", "predictions", ["model", "received_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("salt", sa.String(128), nullable=False),
        sa.Column("hash", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_table("audit")
    op.drop_table("api_keys")
    op.drop_index("ix_predictions_model_received_at", table_name="predictions")
    op.drop_index("ix_predictions_received_at", table_name="predictions")
    op.drop_table("predictions")

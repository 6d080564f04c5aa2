"""Durable turns: the turn's request, lease, outcome and delivery state; reply images.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    """Add the lifecycle columns; old turns become delivered (done) or failed (the rest)."""
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("request", sa.Text(), nullable=True))
        batch.add_column(sa.Column("route", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("posted", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("call", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reply", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(), nullable=True))
        batch.add_column(_timestamp("lease_expires_at"))
        batch.add_column(sa.Column("runs", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("delivery_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(_timestamp("next_attempt_at"))
        batch.add_column(_timestamp("completed_at"))
        batch.create_index("ix_turns_status_created_at", ["status", "created_at"])
    # A pending turn of the old code cannot be resumed: it kept nothing to resume from.
    # The old `error` held a class name, not the record the new code reads.
    op.execute("UPDATE turns SET error = NULL")
    op.execute("UPDATE turns SET status = 'delivered' WHERE status = 'done'")
    op.execute("UPDATE turns SET status = 'failed' WHERE status <> 'delivered'")
    op.create_table(
        "turn_images",
        sa.Column("turn_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("mime", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("revised_prompt", sa.Text(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("turn_id", "position"),
    )


def downgrade() -> None:
    """Back to the plain ledger."""
    op.drop_table("turn_images")
    op.execute("UPDATE turns SET status = 'done' WHERE status = 'delivered'")
    op.execute("UPDATE turns SET status = 'failed' WHERE status <> 'done'")
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ix_turns_status_created_at")
        for name in (
            "completed_at",
            "next_attempt_at",
            "delivery_attempts",
            "runs",
            "lease_expires_at",
            "lease_owner",
            "reply",
            "call",
            "posted",
            "route",
            "request",
        ):
            batch.drop_column(name)

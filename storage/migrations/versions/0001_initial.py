"""Initial schema: users, thread sessions, admin prompts, turn ledger, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    # Aware timestamps: timestamptz on PostgreSQL; storage.tables.UTCDateTime handles SQLite.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "external_users",
        sa.Column("user_key", sa.String(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("external_user_id", sa.String(), nullable=False),
        sa.Column("workspace_id", sa.String(), nullable=True),
        sa.Column("display_name", sa.String(), nullable=True),
        _timestamp("bootstrapped_at", nullable=True),
        sa.Column("persona", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("user_key"),
    )
    op.create_index(
        "ix_external_users_provider_external_user_id",
        "external_users",
        ["provider", "external_user_id"],
    )

    op.create_table(
        "thread_sessions",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("workspace_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("thread_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("owner_key", sa.String(), nullable=False),
        sa.Column("owner_display", sa.String(), nullable=True),
        sa.Column("last_response_id", sa.String(), nullable=True),
        sa.Column("prompt_fingerprint", sa.String(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("platform", "workspace_id", "channel_id", "thread_id"),
    )
    op.create_index("ix_thread_sessions_session_id", "thread_sessions", ["session_id"])
    op.create_index("ix_thread_sessions_owner_key", "thread_sessions", ["owner_key"])

    op.create_table(
        "admin_prompts",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("workspace_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("platform", "workspace_id", "channel_id"),
    )

    op.create_table(
        "turns",
        sa.Column("turn_id", sa.String(), nullable=False),
        sa.Column("event_key", sa.String(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("thread_key", sa.String(), nullable=False),
        sa.Column("user_key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        _timestamp("created_at"),
        _timestamp("finished_at", nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("credits_charged", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("turn_id"),
        sa.UniqueConstraint("event_key", name="uq_turns_event_key"),
    )
    op.create_index("ix_turns_thread_key_created_at", "turns", ["thread_key", "created_at"])
    op.create_index("ix_turns_user_key_created_at", "turns", ["user_key", "created_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor_key", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("workspace_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])


def downgrade() -> None:
    """Drop everything the upgrade created."""
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_turns_user_key_created_at", table_name="turns")
    op.drop_index("ix_turns_thread_key_created_at", table_name="turns")
    op.drop_table("turns")
    op.drop_table("admin_prompts")
    op.drop_index("ix_thread_sessions_owner_key", table_name="thread_sessions")
    op.drop_index("ix_thread_sessions_session_id", table_name="thread_sessions")
    op.drop_table("thread_sessions")
    op.drop_index("ix_external_users_provider_external_user_id", table_name="external_users")
    op.drop_table("external_users")

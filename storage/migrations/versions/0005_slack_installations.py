"""Slack installations, their bots and OAuth states, for distribution to many workspaces.

The tables slack_sdk's SQLAlchemy stores read and write (`slack_installations`, `slack_bots`,
`slack_oauth_states`), created here so every replica finds them made, on SQLite as on
PostgreSQL. Token columns are wider than slack_sdk's 200 characters: with
TOKEN_ENCRYPTION_KEY they hold ciphertext. A test compares these columns with slack_sdk's.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 32
_NAME = 200
_TOKEN = 1000
_SCOPES = 1000


def _bot_columns() -> list[sa.Column[object]]:
    """The columns an installation and its bot share."""
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(_ID), nullable=False),
        sa.Column("app_id", sa.String(_ID), nullable=False),
        sa.Column("enterprise_id", sa.String(_ID)),
        sa.Column("enterprise_name", sa.String(_NAME)),
        sa.Column("team_id", sa.String(_ID)),
        sa.Column("team_name", sa.String(_NAME)),
        sa.Column("bot_token", sa.String(_TOKEN)),
        sa.Column("bot_id", sa.String(_ID)),
        sa.Column("bot_user_id", sa.String(_ID)),
        sa.Column("bot_scopes", sa.String(_SCOPES)),
        sa.Column("bot_refresh_token", sa.String(_TOKEN)),
        sa.Column("bot_token_expires_at", sa.DateTime()),
    ]


def upgrade() -> None:
    """The three tables and slack_sdk's indexes."""
    op.create_table(
        "slack_installations",
        *_bot_columns(),
        sa.Column("enterprise_url", sa.String(_NAME)),
        sa.Column("user_id", sa.String(_ID), nullable=False),
        sa.Column("user_token", sa.String(_TOKEN)),
        sa.Column("user_scopes", sa.String(_SCOPES)),
        sa.Column("user_refresh_token", sa.String(_TOKEN)),
        sa.Column("user_token_expires_at", sa.DateTime()),
        sa.Column("incoming_webhook_url", sa.String(_NAME)),
        sa.Column("incoming_webhook_channel", sa.String(_NAME)),
        sa.Column("incoming_webhook_channel_id", sa.String(_NAME)),
        sa.Column("incoming_webhook_configuration_url", sa.String(_NAME)),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("token_type", sa.String(_ID)),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "slack_installations_idx",
        "slack_installations",
        ["client_id", "enterprise_id", "team_id", "user_id", "installed_at"],
    )
    op.create_table(
        "slack_bots",
        *_bot_columns(),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "slack_bots_idx", "slack_bots", ["client_id", "enterprise_id", "team_id", "installed_at"]
    )
    op.create_table(
        "slack_oauth_states",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(_NAME), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    """No Slack installations."""
    op.drop_table("slack_oauth_states")
    op.drop_index("slack_bots_idx", table_name="slack_bots")
    op.drop_table("slack_bots")
    op.drop_index("slack_installations_idx", table_name="slack_installations")
    op.drop_table("slack_installations")

"""The tables of Slack installations, bots and OAuth states (distribution), as migration 0005
made them: slack_sdk's SQLAlchemy stores' columns, with room for encrypted tokens."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

_ID, _NAME, _TOKEN, _SCOPES = 32, 200, 1000, 1000
TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")


def _bot_columns() -> list[sa.Column[object]]:
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


slack_installations = sa.Table(
    "slack_installations",
    SQLModel.metadata,
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
    sa.Index(
        "slack_installations_idx",
        "client_id",
        "enterprise_id",
        "team_id",
        "user_id",
        "installed_at",
    ),
)

slack_bots = sa.Table(
    "slack_bots",
    SQLModel.metadata,
    *_bot_columns(),
    sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
    sa.Column("installed_at", sa.DateTime(), nullable=False),
    sa.Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = sa.Table(
    "slack_oauth_states",
    SQLModel.metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("state", sa.String(_NAME), nullable=False),
    sa.Column("expire_at", sa.DateTime(), nullable=False),
)

SLACK_TABLES = ("slack_installations", "slack_bots", "slack_oauth_states")

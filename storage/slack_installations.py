"""Slack installations (distribution) in the bot's own database: slack_sdk's SQLAlchemy stores
on our engine, over the tables migration 0005 made; tokens sealed with TOKEN_ENCRYPTION_KEY."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.slack_sealing import SealedInstallationStore, check_keys, keys, reseal
from storage.slack_tables import slack_bots

STATE_SECONDS = 600  # an install link works for ten minutes


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed workspace (or Grid org), for the operator: never its token."""

    team_id: str | None
    enterprise_id: str | None
    name: str | None
    installed_at: datetime
    scopes: str | None
    org_install: bool


class SlackInstallations:
    """The installation and OAuth state stores of one Slack app (its client id)."""

    def __init__(
        self,
        engine: AsyncEngine,
        client_id: str,
        key: str | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        logger = logger or logging.getLogger(__name__)
        self._engine = engine
        self._client_id = client_id
        self._fernet = keys(key) if key else None
        self.installations: AsyncSQLAlchemyInstallationStore = (
            SealedInstallationStore(client_id, engine, self._fernet, logger=logger)
            if self._fernet is not None
            else AsyncSQLAlchemyInstallationStore(client_id, engine, logger=logger)
        )
        self.states = AsyncSQLAlchemyOAuthStateStore(STATE_SECONDS, engine, logger=logger)
        self._app_id: str | None = None

    async def app_id(self) -> str | None:
        """The app's id as installs recorded it; None while no workspace has installed it."""
        if self._app_id is None:
            query = sa.select(slack_bots.c.app_id).where(slack_bots.c.client_id == self._client_id)
            async with self._engine.connect() as conn:
                found = (await conn.execute(query.limit(1))).scalar()
            self._app_id = found if isinstance(found, str) and found else None
        return self._app_id

    async def installed(self) -> list[Installed]:
        """The workspaces the app is installed in now (their latest bot), oldest first."""
        bots = slack_bots
        query = (
            sa.select(
                bots.c.team_id,
                bots.c.enterprise_id,
                sa.func.coalesce(bots.c.team_name, bots.c.enterprise_name),
                bots.c.installed_at,
                bots.c.bot_scopes,
                bots.c.is_enterprise_install,
            )
            .where(bots.c.client_id == self._client_id)
            .order_by(bots.c.installed_at)
        )
        latest: dict[tuple[str | None, str | None], Installed] = {}
        async with self._engine.connect() as conn:
            for row in (await conn.execute(query)).all():
                latest[(row[0], row[1])] = Installed(*row)
        return sorted(latest.values(), key=lambda found: found.installed_at)

    async def check_keys(self) -> int:
        """Open every stored token once (WrongKey when one cannot be); how many are sealed."""
        return 0 if self._fernet is None else await check_keys(self._engine, self._fernet)

    async def reseal(self) -> int:
        """Encrypt every stored token again with the first key; how many rows changed."""
        if self._fernet is None:
            raise ValueError("no TOKEN_ENCRYPTION_KEY to seal with")
        return await reseal(self._engine, self._fernet)

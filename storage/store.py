"""The SQL store: every repository over one engine, and `open_store` to set it all up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import Database
from storage.engine import CONNECT_TIMEOUT, create_engine, default_database_url, upgrade
from storage.problems import check_url, unavailable
from storage.repositories import (
    SqlAuditLog,
    SqlPromptRepository,
    SqlSessionRepository,
    SqlUserRepository,
)
from storage.slack_installations import SlackInstallations
from storage.tables import utcnow
from storage.turns import SqlTurnLedger

log = logging.getLogger(__name__)


class SqlStore:
    """core.ports.Store over SQLAlchemy: SQLite or PostgreSQL; `now` is the ledger's clock."""

    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self.engine = engine
        self.db = Database(engine)
        self.users = SqlUserRepository(self.db)
        self.sessions = SqlSessionRepository(self.db)
        self.prompts = SqlPromptRepository(self.db)
        self.turns = SqlTurnLedger(self.db, now=now)
        self.audit = SqlAuditLog(self.db)

    def slack_installations(
        self,
        client_id: str,
        key: SecretStr | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> SlackInstallations:
        """The Slack app's installations and OAuth states (distribution), tokens sealed with
        `key` (TOKEN_ENCRYPTION_KEY) when given."""
        secret = key.get_secret_value() if key is not None else None
        return SlackInstallations(self.db.engine, client_id, secret, logger=logger)


@asynccontextmanager
async def open_store(
    url: str | None,
    *,
    migrate: bool = True,
    connect_args: Mapping[str, Any] | None = None,
    pool_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT,
    now: Callable[[], datetime] = utcnow,
) -> AsyncIterator[SqlStore]:
    """Open the store at `url` (None: the default SQLite file), migrated to head if asked.

    A URL the bot cannot use, a server that refuses or does not answer within
    `connect_timeout`, or a file that cannot be written raise
    `storage.problems.DatabaseUnavailable`, which says why in one clause.

    On PostgreSQL at most `pool_size` connections are open at once, whatever the number of
    turns in flight: every query holds one for its own short transaction only.
    """
    url = url or default_database_url()
    parsed = check_url(url)
    try:
        engine = create_engine(
            url,
            connect_args=connect_args,
            pool_size=pool_size,
            max_overflow=0,
            connect_timeout=connect_timeout,
        )
    except OSError as exc:  # SQLite's folder cannot be made
        raise unavailable(exc, parsed, connect_timeout=connect_timeout) from exc
    try:
        store = SqlStore(engine, now=now)
        try:
            try:
                # Reached once before anything else, so that a refusal is told as one. (On
                # SQLite through the store's own thread: aiosqlite, whose connection failed,
                # would answer a closed event loop from its thread, omnilib/aiosqlite#241.)
                await store.db.ping()
            except (OSError, DBAPIError) as exc:
                raise unavailable(exc, parsed, connect_timeout=connect_timeout) from exc
            if migrate:
                try:
                    await upgrade(engine)
                except (OSError, OperationalError) as exc:  # read-only file, disk full, cut off
                    raise unavailable(exc, parsed, connect_timeout=connect_timeout) from exc
            log.info(
                "store open",
                extra={"database": parsed.render_as_string(hide_password=True)},
            )
            yield store
        finally:
            await store.db.close()
    finally:
        await engine.dispose()

"""The SQL store: every repository over one engine, and `open_store` to set it all up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.ports import ThreadLocks
from storage.engine import create_engine, default_database_url, upgrade
from storage.locks import LocalThreadLocks, PostgresThreadLocks
from storage.repositories import (
    SqlAuditLog,
    SqlPromptRepository,
    SqlSessionRepository,
    SqlTurnLedger,
    SqlUserRepository,
    session_factory,
)

log = logging.getLogger(__name__)


class SqlStore:
    """core.ports.Store over SQLAlchemy: SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine, *, locks: ThreadLocks | None = None) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self.engine = engine
        sessions = session_factory(engine)
        self.users = SqlUserRepository(sessions, dialect)
        self.sessions = SqlSessionRepository(sessions, dialect)
        self.prompts = SqlPromptRepository(sessions, dialect)
        self.turns = SqlTurnLedger(sessions, dialect)
        self.audit = SqlAuditLog(sessions, dialect)
        self.locks: ThreadLocks = locks if locks is not None else _default_locks(engine)


def _default_locks(engine: AsyncEngine) -> ThreadLocks:
    if engine.dialect.name == "postgresql":
        return PostgresThreadLocks(engine)
    return LocalThreadLocks()


@asynccontextmanager
async def open_store(
    url: str | None,
    *,
    migrate: bool = True,
    connect_args: Mapping[str, Any] | None = None,
    pool_size: int = 10,
    lock_connections: int = 40,
) -> AsyncIterator[SqlStore]:
    """Open the store at `url` (None: the default SQLite file), migrated to head if asked.

    On PostgreSQL, `pool_size` connections serve the repositories (and as many again in
    bursts) and up to `lock_connections` more hold the locks of running turns.
    """
    url = url or default_database_url()
    engine = create_engine(
        url, connect_args=connect_args, pool_size=pool_size, max_overflow=pool_size
    )
    lock_engine: AsyncEngine | None = None
    try:
        if migrate:
            await upgrade(engine)
        locks: ThreadLocks = LocalThreadLocks()
        if engine.dialect.name == "postgresql":
            # A pool of its own: a turn holds a lock connection for its whole run.
            lock_engine = create_engine(
                url, connect_args=connect_args, pool_size=lock_connections, max_overflow=0
            )
            locks = PostgresThreadLocks(lock_engine, max_held=lock_connections)
        log.info(
            "store open",
            extra={"database": make_url(url).render_as_string(hide_password=True)},
        )
        yield SqlStore(engine, locks=locks)
    finally:
        if lock_engine is not None:
            await lock_engine.dispose()
        await engine.dispose()

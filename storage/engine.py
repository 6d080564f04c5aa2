"""Engines for SQLite and PostgreSQL, the default database URL, and migrating to head."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Connection, event, func, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from storage.problems import check_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_DB_FILE = "samsar-bots.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT = 10.0
"""Seconds a new PostgreSQL connection may take (asyncpg's own default is a minute)."""
# A fixed advisory lock id so replicas starting together migrate one after the other.
_MIGRATION_LOCK_ID = 0x5A5A_4D49_4752_4154  # "ZZMIGRAT"
# Alembic keeps its `context`/`op` proxies in module globals: one migration run at a time
# per event loop, whichever database it targets.
_upgrade_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def default_database_url(data_dir: str | Path = "./data") -> str:
    """The embedded SQLite database under `data_dir` (the folder is made when it is opened)."""
    folder = Path(data_dir).expanduser().resolve()
    return f"sqlite+aiosqlite:///{folder / DEFAULT_DB_FILE}"


def create_engine(
    url: str,
    *,
    connect_args: Mapping[str, Any] | None = None,
    pool_size: int = 10,
    max_overflow: int = 20,
    pool_timeout: float = 30,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> AsyncEngine:
    """An async engine for a sqlite+aiosqlite or postgresql+asyncpg URL (any other URL:
    `storage.problems.DatabaseUnavailable`; SQLite's folder is made: OSError when it cannot).

    `pool_size`, `max_overflow` and `connect_timeout` apply to PostgreSQL; `connect_args` go
    to the driver (e.g. `{"server_settings": {"search_path": "tenant"}}` for asyncpg).
    """
    args = dict(connect_args or {})
    if check_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, args)
    args.setdefault("timeout", connect_timeout)
    return create_async_engine(
        url,
        connect_args=args,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        # No ping at every checkout (a round trip per unit of work): a connection closed
        # while idle fails once and its unit runs again (storage.database.Database).
        pool_recycle=1800,
    )


def _sqlite_engine(url: str, connect_args: dict[str, Any]) -> AsyncEngine:
    """SQLite in WAL mode with a busy timeout, so concurrent writers queue instead of failing."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args=connect_args)
    event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    """WAL with a busy timeout, so writers of other processes queue instead of failing."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # WAL makes NORMAL durable against application crashes, and it is much faster.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations, from any working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade_sync(connection: Connection) -> None:
    config = alembic_config()
    # env.py runs on this connection instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(url_or_engine: str | AsyncEngine) -> None:
    """Apply every migration up to head; a database already at head is left as it is."""
    if isinstance(url_or_engine, str):
        engine = create_engine(url_or_engine, pool_size=1, max_overflow=0)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        return
    loop = asyncio.get_running_loop()
    guard = _upgrade_guards.setdefault(loop, asyncio.Lock())
    async with guard, url_or_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held to the end of this transaction; a second replica then finds head.
            lock_id = literal(_MIGRATION_LOCK_ID, BigInteger)
            await conn.execute(select(func.pg_advisory_xact_lock(lock_id)))
        await conn.run_sync(_upgrade_sync)
    log.info("database migrated to head", extra={"backend": url_or_engine.dialect.name})

"""One unit of work, one transaction, one hop: how every repository reaches the database.

A unit of work is a plain function over a SQLAlchemy `Connection`. On PostgreSQL it runs on the
asyncpg pool through `run_sync` (one pooled connection for the length of the unit, never
longer). On SQLite it runs in one thread of our own on the standard library driver: aiosqlite
hops to its thread and back for every call (execute, fetch, commit, the rollback on return to
the pool), which made the database most of a turn's cost; here a whole unit is one hop, and the
thread also puts the process's writers in line, one after the other, as SQLite wants.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import sqlite_pragmas

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """Runs units of work on the store's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sync: Engine | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        if self.dialect == "sqlite":
            self._sync = _sqlite_sync_engine(engine)
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")

    @property
    def engines(self) -> tuple[Engine, ...]:
        """The engines statements run on (to count or trace them): the SQLite thread's, or the
        async engine's sync core on PostgreSQL."""
        return (self._sync,) if self._sync is not None else (self.engine.sync_engine,)

    async def run(
        self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(connection, *args, **kwargs)` in one transaction, committed when it returns
        and rolled back when it raises."""
        if self._thread is not None:
            unit = functools.partial(self._in_thread, work, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._thread, unit)
        return await self._on_pool(self.engine, work, *args, **kwargs)

    async def run_autocommit(
        self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A unit whose statements need no transaction around them (each is atomic by itself,
        such as a unit of one statement): on PostgreSQL in autocommit, without the round trips
        of BEGIN and COMMIT; on SQLite as `run`."""
        if self._thread is not None:
            return await self.run(work, *args, **kwargs)
        return await self._on_pool(self._autocommit, work, *args, **kwargs)

    @staticmethod
    async def _on_pool(
        engine: AsyncEngine,
        work: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """On a pooled connection. A connection the server or a proxy closed while it sat in
        the pool fails its first statement: the pool drops it, and the unit runs once more on a
        fresh one (cheaper than pinging every connection at checkout). Units are written so
        that running one again is harmless: conditional updates, inserts that detect their
        twin."""
        for attempt in (1, 2):
            try:
                async with engine.begin() as conn:
                    return await conn.run_sync(work, *args, **kwargs)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                log.warning("database connection lost; running the unit again")
        raise AssertionError("unreachable")

    def _in_thread(
        self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return work(conn, *args, **kwargs)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query (for readiness checks)."""
        await self.run_autocommit(_ping)

    async def close(self) -> None:
        """Finish queued units, then close the SQLite thread's connections."""
        if self._thread is not None and self._sync is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._sync.dispose)
            self._thread.shutdown(wait=True)


def _sqlite_sync_engine(engine: AsyncEngine) -> Engine:
    """The same SQLite file on the standard library driver, with the async engine's pragmas.

    Its connections live in the one thread that uses them; the pool keeps one open."""
    url = engine.url.set(drivername="sqlite+pysqlite")
    sync = create_sync_engine(url, pool_size=1, max_overflow=0, pool_reset_on_return=None)
    event.listen(sync, "connect", sqlite_pragmas)
    return sync


def _ping(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1")

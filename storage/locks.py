"""Thread locks: a no-op for single-process SQLite, PostgreSQL advisory locks across replicas."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlalchemy import BigInteger, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

log = logging.getLogger(__name__)


def advisory_key(thread_key: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock` (the same in every replica)."""
    digest = hashlib.blake2b(thread_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LocalThreadLocks:
    """No lock at all: with SQLite there is one process, and core already orders its turns."""

    def hold(self, thread_key: str) -> AbstractAsyncContextManager[None]:
        """A block that holds nothing."""
        return _nothing()


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


class PostgresThreadLocks:
    """A session-level advisory lock per thread, held on its own connection for the block.

    Give it an engine of its own (as `open_store` does) so connections parked on a lock
    never starve the repositories' pool.
    """

    def __init__(self, engine: AsyncEngine, *, max_held: int = 40) -> None:
        self._engine = engine
        # At most `max_held` turns hold a connection; the next ones queue here, in order,
        # instead of failing on the pool's timeout after 30 s.
        self._slots = asyncio.Semaphore(max_held)

    @asynccontextmanager
    async def hold(self, thread_key: str) -> AsyncIterator[None]:
        """Hold the thread's lock for the duration of the block; always released."""
        async with self._slots, self._locked(thread_key):
            yield

    @asynccontextmanager
    async def _locked(self, thread_key: str) -> AsyncIterator[None]:
        key = literal(advisory_key(thread_key), BigInteger)
        conn = await self._engine.connect()
        try:
            # Autocommit: the lock is the session's, so no transaction sits idle meanwhile.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(select(func.pg_advisory_lock(key)))
        except BaseException:
            # Cancelled or failed while waiting: the server may still grant the lock to
            # this session, so the session itself must end rather than go back to the pool.
            await _discard(conn)
            raise
        try:
            yield
        finally:
            await _unlock(conn, key, thread_key)


async def _unlock(conn: AsyncConnection, key: ColumnElement[int], thread_key: str) -> None:
    """Release the lock and return the connection; drop the connection if that fails."""
    try:
        released = (await conn.execute(select(func.pg_advisory_unlock(key)))).scalar()
    except Exception:
        # A broken session has lost its locks already; the block's own outcome stands.
        log.warning("advisory unlock failed", extra={"thread": thread_key}, exc_info=True)
        await _discard(conn)
        return
    except BaseException:
        await _discard(conn)  # cancelled mid-unlock: ending the session releases the lock
        raise
    if not released:
        log.warning("advisory lock was not held at unlock", extra={"thread": thread_key})
    await conn.close()


async def _discard(conn: AsyncConnection) -> None:
    """Close the physical connection, which releases every lock its session held."""
    try:
        await conn.invalidate()
    except Exception:
        log.warning("could not invalidate a lock connection", exc_info=True)
    finally:
        await conn.close()

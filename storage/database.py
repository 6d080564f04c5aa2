"""One unit of work, one transaction, one hop: how every repository reaches the database.

A unit of work is a plain function over a SQLAlchemy `Connection`. On PostgreSQL it runs on the
asyncpg pool through `run_sync` (one pooled connection for the length of the unit, never
longer). On SQLite it runs in one thread of our own on the standard library driver: aiosqlite
hops to its thread and back for every call (execute, fetch, commit, the rollback on return to
the pool), which made the database most of a turn's cost; here a whole unit is one hop, and the
thread also puts the process's writers in line, one after the other, as SQLite wants. Units
queued while the thread was busy are taken together and answered together (one wake-up of the
thread, one of the event loop, for all of them), each still in a transaction of its own, on a
connection the thread keeps open.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
        self._line: _SqliteLine | None = None
        self._lanes: _PostgresLanes | None = None
        if self.dialect == "sqlite":
            self._sync = _sqlite_sync_engine(engine)
            self._line = _SqliteLine(self._sync)
        else:
            self._lanes = _PostgresLanes(self._autocommit, _pool_size(engine))

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
        if self._line is not None:
            return await self._line.submit(work, args, kwargs)
        return await self._on_pool(self.engine, work, *args, **kwargs)

    async def run_autocommit(
        self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A unit whose statements need no transaction around them (each is atomic by itself,
        such as a unit of one statement): on PostgreSQL in autocommit, without the round trips
        of BEGIN and COMMIT; on SQLite as `run`."""
        if self._line is not None:
            return await self._line.submit(work, args, kwargs)
        assert self._lanes is not None
        return await self._lanes.submit(work, args, kwargs)

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

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query (for readiness checks)."""
        await self.run_autocommit(_ping)

    async def close(self) -> None:
        """Finish queued units, then close the SQLite thread's connections (or give the
        PostgreSQL lanes' connections back to the pool)."""
        if self._line is not None:
            await self._line.close()
        if self._lanes is not None:
            await self._lanes.close()


class _PostgresLanes:
    """PostgreSQL units in autocommit, a few connections ("lanes") at a time: a lane takes the
    units queued when it starts (up to `_BATCH`) and runs them one after the other in one
    trip into SQLAlchemy's greenlet on one pooled connection, each statement committing by
    itself as it would alone; so units that come together cost one checkout, not one each.
    The last lane keeps its connection for `_LINGER` seconds after its queue empties, for the
    next unit (a turn's units come one after the other: a checkout and its return cost more
    than a short statement). A connection the server closed fails its unit, which runs again
    (with those after it) on a fresh one, once, as `Database._on_pool` does."""

    def __init__(self, engine: AsyncEngine, lanes: int) -> None:
        self._engine = engine
        self._lanes = lanes
        self._busy = 0
        self._idle = 0  # lanes keeping their connection, waiting for a unit
        self._more = asyncio.Event()
        self._closing = False
        self._queue: collections.deque[_Queued] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self, work: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        """The unit's outcome, once a lane has run it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((future, work, args, kwargs))
        if self._idle:
            self._more.set()
        elif self._busy < self._lanes:
            self._busy += 1
            task = asyncio.create_task(self._lane())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _lane(self) -> None:
        conn: AsyncConnection | None = None
        try:
            while self._queue or (conn is not None and await self._linger()):
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                batch = [unit for unit in batch if not unit[0].cancelled()]
                try:
                    conn, answers = await self._run(conn, batch)
                except Exception as exc:  # no connection to be had: each caller is told
                    conn, answers = None, [(unit[0], False, exc) for unit in batch]
                except BaseException:  # the lane itself is stopped: so are its callers
                    conn = None  # (closed by `_run`)
                    for unit in batch:
                        unit[0].cancel()
                    raise
                _settle(answers)
        finally:
            self._busy -= 1  # before any wait: a unit queued from here on starts a lane
            if conn is not None:
                await conn.close()

    async def close(self) -> None:
        """Let the lanes finish what is queued, and none wait for more."""
        self._closing = True
        self._more.set()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _linger(self) -> bool:
        """Whether a unit came within `_LINGER` seconds (only the last lane waits)."""
        if self._busy > 1 or self._closing:
            return False
        self._idle += 1
        self._more.clear()
        try:
            async with asyncio.timeout(_LINGER):
                await self._more.wait()
        except TimeoutError:
            pass
        finally:
            self._idle -= 1
        return bool(self._queue)

    async def _run(
        self, conn: AsyncConnection | None, batch: list[_Queued]
    ) -> tuple[AsyncConnection, list[_Answer]]:
        answers: list[_Answer] = []
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn = await self._engine.connect()
                await conn.run_sync(_run_units, batch[len(answers) :], answers)
                return conn, answers
            except BaseException as exc:  # the connection goes back (an invalidated one is
                if conn is not None:  # discarded by the pool), whatever happened
                    await conn.close()
                conn = None
                lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
                if not lost or attempt == 2:
                    raise
                log.warning("database connection lost; running the unit again")
        raise AssertionError("unreachable")


_BATCH = 8
"""Units a PostgreSQL lane takes at once."""
_LINGER = 0.5
"""Seconds the last PostgreSQL lane keeps its connection for the next unit."""
_Queued = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _run_units(conn: Connection, units: list[_Queued], answers: list[_Answer]) -> None:
    """Run each unit on `conn`, its outcome kept in `answers`; a lost connection stops here
    (that unit and those after it run again on another)."""
    for future, work, args, kwargs in units:
        try:
            answers.append((future, True, work(conn, *args, **kwargs)))
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            answers.append((future, False, exc))
        except Exception as exc:  # handed to its caller
            answers.append((future, False, exc))


def _pool_size(engine: AsyncEngine) -> int:
    size = getattr(engine.sync_engine.pool, "size", None)
    return max(1, size()) if callable(size) else 5


_Answer = tuple["asyncio.Future[Any]", bool, Any]
"""A unit's future, whether it returned, and what it returned or raised."""
_Unit = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


class _SqliteLine:
    """The SQLite thread: runs the units queued from event loops one after the other, each in
    its own transaction on the one connection it keeps open. Whatever was queued while it was
    busy is taken at once and answered with one call into each loop."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._conn: Connection | None = None

    def submit(
        self, work: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[T]:
        """The unit's outcome, once the thread has run it."""
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name="sqlite", daemon=True)
                    self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, work, args, kwargs))
        return future

    async def close(self) -> None:
        """Run what is queued, then close the connection and end the thread."""
        if self._thread is None:
            self._engine.dispose()
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _serve(self) -> None:
        running = True
        while running:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            answers: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
            for unit in batch:
                if unit is None:
                    running = False
                    continue
                loop, future, work, args, kwargs = unit
                if future.cancelled():  # its caller has gone: as an executor skips it
                    continue
                try:
                    answer: _Answer = (future, True, self._run(work, args, kwargs))
                except BaseException as exc:  # handed to the caller, whatever it is
                    answer = (future, False, exc)
                answers.setdefault(loop, []).append(answer)
            for loop, done in answers.items():
                with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
                    loop.call_soon_threadsafe(_settle, done)
        if self._conn is not None:
            self._conn.close()
        self._engine.dispose()

    def _run(self, work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self._conn = self._engine.connect()
        with conn.begin():
            return work(conn, *args, **kwargs)


def _settle(done: list[_Answer]) -> None:
    for future, ok, value in done:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _sqlite_sync_engine(engine: AsyncEngine) -> Engine:
    """The same SQLite file on the standard library driver, with the async engine's pragmas.

    Its connections live in the one thread that uses them; the pool keeps one open."""
    url = engine.url.set(drivername="sqlite+pysqlite")
    sync = create_sync_engine(url, pool_size=1, max_overflow=0, pool_reset_on_return=None)
    event.listen(sync, "connect", sqlite_pragmas)
    return sync


def _ping(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1")

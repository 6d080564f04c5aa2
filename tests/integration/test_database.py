"""Units of work: a PostgreSQL connection closed while it sat in the pool costs one retry,
not a failed turn (the pool does not ping at every checkout)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.models import StoredUser
from storage.store import SqlStore, open_store
from tests.integration.conftest import PG_URL, Database, needs_postgres


@contextlib.asynccontextmanager
async def _store_and_killer(
    pg_database: Database,
) -> AsyncIterator[tuple[SqlStore, Callable[[], Awaitable[None]]]]:
    """A store on PostgreSQL, and a call that has the server close its connections (as a
    restart or an idle timeout of a proxy would)."""
    name = f"samsar-test-{uuid.uuid4().hex[:8]}"
    args = {
        "server_settings": {**pg_database.connect_args["server_settings"], "application_name": name}
    }
    assert PG_URL is not None
    admin = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    async def kill() -> None:
        async with admin.connect() as conn:
            killed = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": name},
            )
            assert killed.scalar_one() >= 1

    try:
        async with open_store(pg_database.url, connect_args=args) as store:
            yield store, kill
    finally:
        await admin.dispose()


@needs_postgres
async def test_connections_the_server_closed_are_replaced_and_the_unit_runs_again(
    pg_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with _store_and_killer(pg_database) as (store, kill):
        user = StoredUser("discord:1", "discord", "discord", "1")
        await store.users.save(user)  # the pool now holds an open connection
        await kill()
        with caplog.at_level(logging.WARNING, logger="storage.database"):
            assert await store.users.get("discord:1") == user  # one statement, autocommit
            await store.users.save(user)
            assert await store.turns.claim_some("w", ["discord"], timedelta(seconds=5), 4) == []
        assert "database connection lost" in caplog.text


@needs_postgres
async def test_a_statement_sent_on_the_cursor_on_a_closed_connection_runs_again(
    pg_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # storage.direct: the lost connection is handed to SQLAlchemy, which drops it and its peers.
    async with _store_and_killer(pg_database) as (store, kill):
        await store.turns.save_posted("no-such-turn", "x")  # the pool now holds one
        await kill()
        with caplog.at_level(logging.WARNING, logger="storage.database"):
            await store.turns.save_posted("no-such-turn", "y")
        assert "database connection lost" in caplog.text


class _Refused(Exception):
    """A unit that fails after writing."""


def _write_then(conn: Connection, n: int, fail: bool) -> int:
    conn.execute(
        text(
            "INSERT INTO audit_log (actor_key, action, platform, workspace_id, channel_id,"
            " detail, created_at) VALUES (:n, 'unit', 'p', 'w', 'c', '', CURRENT_TIMESTAMP)"
        ),
        {"n": str(n)},
    )
    if fail:
        raise _Refused(n)
    return n * 10


def _written(conn: Connection) -> set[str]:
    return set(conn.execute(text("SELECT actor_key FROM audit_log")).scalars())


async def test_units_sent_at_once_each_commit_or_roll_back_alone(store: SqlStore) -> None:
    # Queued together (on SQLite taken by the thread in one go), each unit still has a
    # transaction of its own and its caller gets its own answer.
    units = [store.db.run(_write_then, n, n % 3 == 0) for n in range(30)]
    answers = await asyncio.gather(*units, return_exceptions=True)
    for n, answer in enumerate(answers):
        if n % 3 == 0:
            assert isinstance(answer, _Refused) and answer.args == (n,)
        else:
            assert answer == n * 10
    assert await store.db.run(_written) == {str(n) for n in range(30) if n % 3}


async def test_a_sqlite_unit_whose_caller_left_before_it_ran_is_skipped(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(_: Connection) -> None:
        started.set()
        release.wait(10)

    async with open_store(f"sqlite+aiosqlite:///{tmp_path / 'line.db'}") as store:
        held = asyncio.ensure_future(store.db.run(hold))
        await asyncio.to_thread(started.wait, 10)  # the thread is busy with `hold`...
        left = asyncio.ensure_future(store.db.run(_write_then, 1, False))
        await asyncio.sleep(0)  # ...when this one is queued, then its caller goes away
        left.cancel()
        release.set()
        await held
        assert await store.db.run(_write_then, 2, False) == 20
        assert await store.db.run(_written) == {"2"}


@needs_postgres
async def test_postgres_units_sent_at_once_share_a_connection_each_with_its_answer(
    pg_store: SqlStore,
) -> None:
    checkouts: list[object] = []
    pool = pg_store.engine.sync_engine.pool
    listener = lambda *_: checkouts.append(None)  # noqa: E731
    event.listen(pool, "checkout", listener)
    try:
        units = [pg_store.db.run_autocommit(_write_then, n, n % 3 == 0) for n in range(16)]
        answers = await asyncio.gather(*units, return_exceptions=True)
    finally:
        event.remove(pool, "checkout", listener)
    for n, answer in enumerate(answers):
        if n % 3 == 0:
            assert isinstance(answer, _Refused) and answer.args == (n,)
        else:
            assert answer == n * 10
    assert len(checkouts) < 16  # a lane took several units on one connection
    # In autocommit each statement stands alone: a failing unit's write before it failed stays.
    assert await pg_store.db.run(_written) == {str(n) for n in range(16)}


@needs_postgres
async def test_postgres_units_one_after_the_other_keep_one_connection_until_closed(
    pg_database: Database,
) -> None:
    async with open_store(pg_database.url, connect_args=pg_database.connect_args) as store:
        checkouts: list[object] = []
        pool = store.engine.sync_engine.pool
        listener = lambda *_: checkouts.append(None)  # noqa: E731
        event.listen(pool, "checkout", listener)
        try:
            for n in range(10):  # as a turn's units come: each after the last one's answer
                assert await store.db.run_autocommit(_write_then, n, False) == n * 10
                await asyncio.sleep(0.01)  # a gap between them (not a wait: Samsar's call)
        finally:
            event.remove(pool, "checkout", listener)
        assert len(checkouts) <= 1  # the lane kept its connection between them
        assert pool.checkedout() == 1  # and keeps it a moment for the next unit
        await store.db.close()
        assert pool.checkedout() == 0  # closing the store gives it back at once

"""storage.direct: a statement sent on the driver's cursor reads, writes and fails exactly as
through SQLAlchemy's `Connection.execute`, on both backends."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from storage import direct
from storage.store import SqlStore
from storage.tables import UTCDateTime
from tests.integration.conftest import needs_postgres
from tests.integration.test_turn_ledger import statements_sent

_meta = MetaData()
_things = Table(
    "direct_things",
    _meta,
    Column("name", String, primary_key=True),
    Column("amount", Integer, nullable=False),
    Column("share", Float),
    Column("ready", Boolean, nullable=False),
    Column("seen_at", UTCDateTime),
    Column("blob", LargeBinary),
    Column("note", Text),
)

_ALL = select(_things).where(_things.c.name == bindparam("key"))
_FACTS = select(
    (_things.c.amount > bindparam("least")).label("enough"),
    _things.c.seen_at.label("seen"),
    literal(7).label("seven"),
).where(_things.c.name == bindparam("key"))
_ADD = insert(_things)
_BUMP = (
    update(_things)
    .where(_things.c.name == bindparam("key"), _things.c.ready == True)  # noqa: E712 (SQL)
    .values(amount=_things.c.amount + 1)
)
_BUMP_RETURNING = _BUMP.returning(_things.c.amount, _things.c.seen_at)
_SOME = select(_things.c.name).where(_things.c.name.in_(bindparam("names", expanding=True)))

_EAST = timezone(timedelta(hours=5))
_SEEN = datetime(2026, 12, 4, 18, 30, 15, 250000, tzinfo=UTC)
_ROW = {
    "name": "a",
    "amount": 3,
    "share": 0.25,
    "ready": True,
    "seen_at": _SEEN,
    "blob": b"\x00\x01",
    "note": None,
}


def _made(conn: Connection) -> None:
    _meta.create_all(conn)


async def _with_things(store: SqlStore) -> None:
    await store.db.run(_made)
    await store.db.run(lambda conn: direct.rowcount(conn, _ADD, _ROW))
    b = {**_ROW, "name": "b", "ready": False, "seen_at": _SEEN.astimezone(_EAST), "share": None}
    await store.db.run_autocommit(lambda conn: direct.rowcount(conn, _ADD, b))


def _both(conn: Connection, stmt: object, params: dict[str, object]) -> tuple[list, list]:
    theirs = [tuple(row) for row in conn.execute(stmt, params).all()]  # type: ignore[call-overload]
    return theirs, [tuple(row) for row in direct.fetch(conn, stmt, params)]  # type: ignore[arg-type]


async def test_rows_come_back_as_sqlalchemy_reads_them(store: SqlStore) -> None:
    await _with_things(store)

    def read(conn: Connection) -> None:
        theirs, ours = _both(conn, _ALL, {"key": "a"})
        assert ours == theirs == [("a", 3, 0.25, True, _SEEN, b"\x00\x01", None)]
        row = direct.fetch(conn, _ALL, {"key": "b"})[0]
        # An aware datetime in another zone goes in as UTC and comes back aware, as UTC.
        assert row.seen_at == _SEEN and row.seen_at.tzinfo is UTC
        assert row.ready is False and row.share is None
        assert row._mapping["name"] == "b" and row.amount == 3
        with pytest.raises(AttributeError):
            _ = row.nothing
        theirs, ours = _both(conn, _FACTS, {"key": "a", "least": 2})
        assert ours == theirs == [(True, _SEEN, 7)]
        assert direct.fetch(conn, _FACTS, {"key": "a", "least": 5})[0].enough is False

    await store.db.run(read)
    await store.db.run_autocommit(read)


async def test_writes_take_the_columns_their_parameters_name(store: SqlStore) -> None:
    await _with_things(store)

    def write(conn: Connection) -> tuple[int, int, list[object]]:
        bumped = direct.rowcount(conn, _BUMP, {"key": "a"})
        not_ready = direct.rowcount(conn, _BUMP, {"key": "b"})
        returned = direct.fetch(conn, _BUMP_RETURNING, {"key": "a"})
        return bumped, not_ready, [tuple(row) for row in returned]

    assert await store.db.run_autocommit(write) == (1, 0, [(5, _SEEN)])
    # An INSERT of fewer columns writes those, the others left NULL.
    fewer = {"name": "c", "amount": 1, "ready": False}
    await store.db.run(lambda conn: direct.rowcount(conn, _ADD, fewer))
    row = await store.db.run(lambda conn: direct.fetch(conn, _ALL, {"key": "c"})[0])
    assert tuple(row) == ("c", 1, None, False, None, None, None)


async def test_values_are_stored_as_sqlalchemy_stores_them(store: SqlStore) -> None:
    await store.db.run(_made)
    east = {**_ROW, "seen_at": _SEEN.astimezone(_EAST)}
    await store.db.run(lambda conn: conn.execute(_ADD, {**east, "name": "theirs"}))
    await store.db.run(lambda conn: direct.rowcount(conn, _ADD, {**east, "name": "ours"}))

    def stored(conn: Connection) -> list[tuple[object, ...]]:
        raw = "SELECT amount, share, ready, seen_at, blob, note FROM direct_things ORDER BY name"
        return [tuple(row) for row in conn.exec_driver_sql(raw).all()]

    ours, theirs = await store.db.run(stored)
    assert ours == theirs


async def test_an_expanding_list_runs_through_sqlalchemy(store: SqlStore) -> None:
    await _with_things(store)
    names = await store.db.run(lambda conn: direct.fetch(conn, _SOME, {"names": ["a", "x"]}))
    assert [tuple(row) for row in names] == [("a",)]


async def test_failures_are_sqlalchemys_and_a_transaction_still_rolls_back(
    store: SqlStore,
) -> None:
    await _with_things(store)
    with pytest.raises(IntegrityError):
        await store.db.run_autocommit(lambda conn: direct.rowcount(conn, _ADD, _ROW))

    def twice(conn: Connection) -> None:
        direct.rowcount(conn, _ADD, {**_ROW, "name": "d"})
        direct.rowcount(conn, _ADD, _ROW)

    with pytest.raises(IntegrityError):
        await store.db.run(twice)
    gone = await store.db.run(lambda conn: direct.fetch(conn, _ALL, {"key": "d"}))
    assert gone == []  # the first insert went with the transaction


async def test_listeners_hear_every_statement(store: SqlStore) -> None:
    await _with_things(store)
    with statements_sent(store) as sent:
        await store.db.run(lambda conn: direct.fetch(conn, _ALL, {"key": "a"}))
        await store.db.run_autocommit(lambda conn: direct.rowcount(conn, _BUMP, {"key": "a"}))
    assert len(sent) == 2
    assert sent[0].startswith("SELECT") and sent[1].startswith("UPDATE")


async def test_statements_made_afresh_each_time_stop_being_kept(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await _with_things(store)
    monkeypatch.setattr(direct, "_compiled", {})
    monkeypatch.setattr(direct, "_KEPT", 3)
    monkeypatch.setattr(direct, "_full", threading.Event())

    def read(conn: Connection) -> list[object]:
        fresh = select(_things.c.name).where(_things.c.name == bindparam("key"))
        return [tuple(row) for row in direct.fetch(conn, fresh, {"key": "a"})]

    with caplog.at_level(logging.WARNING, logger="storage.direct"):
        for _ in range(5):  # the last two run through SQLAlchemy, and still answer
            assert await store.db.run(read) == [("a",)]
    assert len(direct._compiled) == 3
    assert caplog.text.count("more statements than storage.direct keeps") == 1


@needs_postgres
async def test_a_statement_stopped_midway_leaves_its_connection_unused(pg_store: SqlStore) -> None:
    sleep = select(func.pg_sleep(bindparam("seconds")))
    invalidated: list[object] = []
    event.listen(pg_store.db.engine.sync_engine, "invalidate", lambda *a: invalidated.append(a))
    task = asyncio.create_task(
        pg_store.db.run(lambda conn: direct.fetch(conn, sleep, {"seconds": 30}))
    )
    async with asyncio.timeout(10):  # until the server runs it
        while not await pg_store.db.run_autocommit(_sleeping):  # noqa: ASYNC110 (polling)
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(invalidated) == 1
    answer = await pg_store.db.run(lambda conn: direct.fetch(conn, sleep, {"seconds": 0}))
    assert len(answer) == 1  # the next unit has a sound connection


def _sleeping(conn: Connection) -> bool:
    found = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
        " AND state = 'active'"
    )
    return bool(found.scalar_one())

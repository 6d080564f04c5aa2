"""The SQL store on real databases: migrations, every repository, dedupe and thread locks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col

from core.models import (
    AdminPrompt,
    AuditEntry,
    StoredUser,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnStatus,
)
from storage.engine import MIGRATIONS_DIR, create_engine, default_database_url, upgrade
from storage.locks import LocalThreadLocks, PostgresThreadLocks
from storage.store import SqlStore, open_store
from storage.tables import ALL_TABLES, TurnRow
from tests.integration.conftest import Database, lock_waiters, needs_postgres

T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
THREAD = ThreadRef("slack", "T1", "C1", "1700000000.0001")
U1 = "slack:T1:U1"
PLUS2 = timezone(timedelta(hours=2))


def _turn(event_key: str, turn_id: str | None = None) -> Turn:
    return Turn(turn_id or uuid.uuid4().hex, event_key, "slack", THREAD.key, U1, "ask")


def _is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


async def test_migrations_apply_twice_and_create_every_table(database: Database) -> None:
    engine = database.engine()
    try:
        async with asyncio.timeout(60):
            # Two starting together: the second waits, then finds head.
            await asyncio.gather(upgrade(engine), upgrade(engine))
            await upgrade(engine)
        async with engine.connect() as conn:
            # Explicitly in the test's own schema on PostgreSQL, alembic_version included.
            names = await conn.run_sync(
                lambda c: set(inspect(c).get_table_names(schema=database.schema))
            )
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("turns"))
            # The tables must match the migration: no drift for autogenerate to find.
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
            )
    finally:
        await engine.dispose()
    assert {*ALL_TABLES, "alembic_version"} <= names
    assert version == [("0001",)]
    assert {"ix_turns_thread_key_created_at", "ix_turns_user_key_created_at"} <= {
        index["name"] for index in indexes
    }
    assert diff == []


async def test_upgrade_by_url_from_any_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'x' / 'by-url.db'}"
    await upgrade(url)
    await upgrade(url)
    async with open_store(url, migrate=False) as store:
        assert await store.users.get("nobody") is None


async def test_alembic_cli_config_runs_env_on_its_own(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    config = Config(str(MIGRATIONS_DIR.parent / "alembic.ini"))
    config.cmd_opts = type("Opts", (), {"x": [f"url={url}"]})()  # as `alembic -x url=...`
    # env.py starts its own event loop when no connection is handed over.
    await asyncio.to_thread(command.upgrade, config, "head")
    async with open_store(url, migrate=False) as store:
        await store.audit.record(AuditEntry("a", "prompt.set", "slack", "T1", "", "x"))


async def test_default_url_lands_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = default_database_url(tmp_path / "nested" / "data")
    assert url.startswith("sqlite+aiosqlite:///")
    assert (tmp_path / "nested" / "data").is_dir()
    assert Path(url.removeprefix("sqlite+aiosqlite:///")).parent == tmp_path / "nested" / "data"
    monkeypatch.chdir(tmp_path)
    async with open_store(None) as store:
        assert isinstance(store.locks, LocalThreadLocks)
    assert list((tmp_path / "data").glob("*.db"))


async def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}"
    async with open_store(url) as store, store.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() >= 1000


async def test_users_round_trip_and_upsert(store: SqlStore) -> None:
    user = StoredUser(U1, "slack", "slack", "T1:U1", "T1", "Ada", T0.astimezone(PLUS2), "terse")
    await store.users.save(user)
    got = await store.users.get(user.user_key)
    assert got == user and got is not None and _is_utc(got.bootstrapped_at)
    replaced = StoredUser(U1, "slack", "slack2", "other", None, None, None, None)
    await store.users.save(replaced)
    assert await store.users.get(user.user_key) == replaced
    assert await store.users.get("slack:T1:U2") is None


async def test_sessions_round_trip_replace_and_delete(store: SqlStore) -> None:
    first = ThreadSession(THREAD, "s1", U1, "Ada", "resp_1", "fp1", T0.astimezone(PLUS2))
    await store.sessions.save(first)
    got = await store.sessions.get(THREAD)
    assert got == first and got is not None and _is_utc(got.created_at)
    # Updating the same session without created_at keeps its creation time.
    await store.sessions.save(ThreadSession(THREAD, "s1", U1, "Ada", "resp_2"))
    updated = await store.sessions.get(THREAD)
    assert updated is not None and updated.last_response_id == "resp_2"
    assert updated.created_at == T0 and updated.prompt_fingerprint is None
    # A new session replaces the row and starts now.
    await store.sessions.save(ThreadSession(THREAD, "s2", "slack:T1:U9"))
    fresh = await store.sessions.get(THREAD)
    assert fresh is not None and (fresh.session_id, fresh.owner_key) == ("s2", "slack:T1:U9")
    assert fresh.created_at is not None and fresh.created_at > T0
    other = ThreadRef("slack", "T1", "C1", "other")
    assert await store.sessions.get(other) is None
    assert await store.sessions.delete(THREAD) is True
    assert await store.sessions.delete(THREAD) is False
    assert await store.sessions.get(THREAD) is None


async def test_sessions_latest_owned_in_a_channel(store: SqlStore) -> None:
    def where(channel: str, thread: str) -> ThreadRef:
        return ThreadRef("slack", "T1", channel, thread)

    assert await store.sessions.latest_owned("slack", "T1", "C1", U1) is None
    await store.sessions.save(ThreadSession(where("C1", "a"), "sa", U1))
    await store.sessions.save(ThreadSession(where("C1", "b"), "sb", U1))
    await store.sessions.save(ThreadSession(where("C1", "c"), "sc", "slack:T1:U9"))
    await store.sessions.save(ThreadSession(where("C2", "d"), "sd", U1))
    latest = await store.sessions.latest_owned("slack", "T1", "C1", U1)
    assert latest is not None and latest.session_id == "sb"
    await store.sessions.save(ThreadSession(where("C1", "a"), "sa", U1, last_response_id="r2"))
    latest = await store.sessions.latest_owned("slack", "T1", "C1", U1)
    assert latest is not None and latest.thread == where("C1", "a")


async def test_prompts_per_scope(store: SqlStore) -> None:
    workspace = AdminPrompt("discord", "G1", "", "be kind", "discord:1", T0)
    channel = AdminPrompt("discord", "G1", "C7", "speak French", "discord:2", T0)
    await store.prompts.set(workspace)
    await store.prompts.set(channel)
    assert await store.prompts.get("discord", "G1", "") == workspace
    assert await store.prompts.get("discord", "G1", "C7") == channel
    assert await store.prompts.get("discord", "G1", "C8") is None
    assert await store.prompts.get("slack", "G1", "") is None
    await store.prompts.set(AdminPrompt("discord", "G1", "", "be brief", "discord:3"))
    replaced = await store.prompts.get("discord", "G1", "")
    assert replaced is not None and replaced.text == "be brief"
    assert replaced.updated_by == "discord:3" and _is_utc(replaced.updated_at)
    assert await store.prompts.clear("discord", "G1", "") is True
    assert await store.prompts.clear("discord", "G1", "") is False
    assert await store.prompts.get("discord", "G1", "") is None
    assert await store.prompts.get("discord", "G1", "C7") == channel


async def test_turn_ledger_round_trip_dedupe_and_finish(store: SqlStore) -> None:
    full = Turn(
        "t1", "ev1", "slack", THREAD.key, U1, "imagine", TurnStatus.DONE, T0, T0, 5, 1.5, "x"
    )
    assert await store.turns.begin(full) is True
    assert await store.turns.get("ev1") == full
    assert await store.turns.begin(_turn("ev1", "t2")) is False
    assert await store.turns.get("ev1") == full  # nothing of the duplicate was written
    assert await store.turns.begin(_turn("ev2", "t3")) is True
    pending = await store.turns.get("ev2")
    assert pending is not None and pending.status is TurnStatus.PENDING
    assert _is_utc(pending.created_at) and pending.finished_at is None
    await store.turns.finish(
        "t3", TurnStatus.FAILED, latency_ms=1234, credits_charged=0.25, error="Boom"
    )
    done = await store.turns.get("ev2")
    assert done is not None and done.status is TurnStatus.FAILED
    assert (done.latency_ms, done.credits_charged, done.error) == (1234, 0.25, "Boom")
    assert _is_utc(done.finished_at)
    await store.turns.finish("t3", TurnStatus.DONE)
    again = await store.turns.get("ev2")
    assert again is not None and again.status is TurnStatus.DONE and again.error is None
    assert await store.turns.get("ev-missing") is None


async def test_turn_ledger_clashing_turn_id_is_not_a_duplicate(store: SqlStore) -> None:
    assert await store.turns.begin(_turn("ev1", "same")) is True
    with pytest.raises(IntegrityError):
        await store.turns.begin(_turn("ev2", "same"))


async def test_turn_ledger_concurrent_begins_of_one_event(store: SqlStore) -> None:
    results = await asyncio.gather(*(store.turns.begin(_turn("ev-race")) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    async with store.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(TurnRow).where(col(TurnRow.event_key) == "ev-race")
        )
    assert count == 1


async def test_audit_recent_newest_first(store: SqlStore) -> None:
    for n in range(5):
        await store.audit.record(
            AuditEntry(
                "discord:1", f"act{n}", "discord", "G1", "C1", f"d{n}", T0 + timedelta(minutes=n)
            )
        )
    await store.audit.record(AuditEntry("discord:2", "late", "discord", "G1", "", "now"))
    recent = await store.audit.recent(limit=3)
    assert [entry.action for entry in recent] == ["late", "act4", "act3"]
    assert recent[1] == AuditEntry(
        "discord:1", "act4", "discord", "G1", "C1", "d4", T0 + timedelta(minutes=4)
    )
    assert all(_is_utc(entry.created_at) for entry in recent)
    assert len(await store.audit.recent()) == 6


@needs_postgres
async def test_postgres_locks_serialize_one_key(pg_store: SqlStore) -> None:
    assert isinstance(pg_store.locks, PostgresThreadLocks)
    key, order = f"thread-{uuid.uuid4().hex}", []
    a_in, release_a, b_in = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with pg_store.locks.hold(key):
            order.append("a in")
            a_in.set()
            await release_a.wait()
            order.append("a out")

    async def second() -> None:
        async with pg_store.locks.hold(key):
            order.append("b in")
            b_in.set()

    task_a = asyncio.create_task(first())
    await a_in.wait()
    task_b = asyncio.create_task(second())
    await lock_waiters(pg_store.engine, key, expected=1)  # B is parked in the server
    assert not b_in.is_set()
    release_a.set()
    await asyncio.wait_for(asyncio.gather(task_a, task_b), 10)
    assert order == ["a in", "a out", "b in"]


@needs_postgres
async def test_postgres_locks_let_other_keys_run(pg_store: SqlStore) -> None:
    a_in, release_a = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with pg_store.locks.hold(f"thread-{uuid.uuid4().hex}"):
            a_in.set()
            await release_a.wait()

    task = asyncio.create_task(holder())
    await a_in.wait()
    async with asyncio.timeout(10), pg_store.locks.hold(f"thread-{uuid.uuid4().hex}"):
        assert not task.done()  # entered while the other key is still held
    release_a.set()
    await task


@needs_postgres
async def test_postgres_locks_released_on_cancel_and_error(pg_store: SqlStore) -> None:
    key = f"thread-{uuid.uuid4().hex}"
    inside, waiting_entered = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with pg_store.locks.hold(key):
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    async def waiter() -> None:
        async with pg_store.locks.hold(key):
            waiting_entered.set()

    held = asyncio.create_task(holder())
    await inside.wait()
    parked = asyncio.create_task(waiter())
    await lock_waiters(pg_store.engine, key, expected=1)
    parked.cancel()  # cancelled while waiting: must not leave a lock behind
    held.cancel()  # cancelled inside the block: must unlock
    for task in (held, parked):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not waiting_entered.is_set()
    with pytest.raises(RuntimeError):
        async with asyncio.timeout(10), pg_store.locks.hold(key):
            raise RuntimeError("boom")
    async with asyncio.timeout(10), pg_store.locks.hold(key):
        pass
    assert await lock_waiters(pg_store.engine, key, granted=True) == 0


@needs_postgres
async def test_postgres_locks_queue_beyond_their_connections(pg_database: Database) -> None:
    """More turns than lock connections wait in line instead of failing on the pool."""
    engine = create_engine(
        pg_database.url,
        connect_args=pg_database.connect_args,
        pool_size=2,
        max_overflow=0,
        pool_timeout=0.2,
    )
    locks = PostgresThreadLocks(engine, max_held=2)
    holding, most = 0, 0
    release = asyncio.Event()
    two_in = asyncio.Event()

    async def turn(n: int) -> None:
        nonlocal holding, most
        async with locks.hold(f"thread-{n}"):
            holding += 1
            most = max(most, holding)
            if holding == 2:
                two_in.set()
            await release.wait()
            holding -= 1

    try:
        tasks = [asyncio.create_task(turn(n)) for n in range(6)]
        async with asyncio.timeout(10):
            await two_in.wait()
            # Hold both connections longer than the pool would let a turn wait for one.
            await asyncio.sleep(0.5)
            release.set()
            await asyncio.gather(*tasks)
    finally:
        await engine.dispose()
    assert most == 2

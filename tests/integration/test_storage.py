"""The SQL store on real databases: migrations and every repository (the turn ledger has its
own module)."""

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
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from core.models import (
    AdminPrompt,
    AuditEntry,
    StoredUser,
    ThreadRef,
    ThreadSession,
    Turn,
)
from storage.engine import MIGRATIONS_DIR, default_database_url, upgrade
from storage.store import SqlStore, open_store
from storage.tables import ALL_TABLES
from tests.integration.conftest import Database

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
    assert version == [("0007",)]
    assert {
        "ux_turns_thread_key_seq",
        "ix_turns_user_key_created_at",
        "ix_turns_status_created_at",
    } <= {index["name"] for index in indexes}
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
    assert Path(url.removeprefix("sqlite+aiosqlite:///")).parent == tmp_path / "nested" / "data"
    async with open_store(url):  # the folder is made as the store opens
        assert (tmp_path / "nested" / "data").is_dir()
    monkeypatch.chdir(tmp_path)
    async with open_store(None) as store:
        assert store.engine.dialect.name == "sqlite"
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

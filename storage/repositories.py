"""SQL implementations of the core repository ports: one short transaction per call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, case, delete, func, insert, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    AdminPrompt,
    AuditEntry,
    StoredUser,
    ThreadRef,
    ThreadSession,
)
from storage.tables import (
    AdminPromptRow,
    AuditRow,
    ExternalUserRow,
    ThreadSessionRow,
    UTCDateTime,
    utcnow,
)

log = logging.getLogger(__name__)


class Sessions:
    """Database sessions: `sessions()` to read, `sessions.begin()` for one write transaction.

    SQLite has one writer at a time and makes the others sleep and retry on its file lock;
    within one process (SQLite serves one) writers instead queue here, in order, at once.
    """

    def __init__(self, maker: async_sessionmaker[AsyncSession], *, one_writer: bool) -> None:
        self._maker = maker
        self._writer = asyncio.Lock() if one_writer else None

    def __call__(self) -> AsyncSession:
        return self._maker()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed at the end of the block."""
        if self._writer is None:
            async with self._maker.begin() as session:
                yield session
            return
        async with self._writer, self._maker.begin() as session:
            yield session


_THREAD_COLUMNS = ("platform", "workspace_id", "channel_id", "thread_id")


def session_factory(engine: AsyncEngine) -> Sessions:
    """Sessions that keep loaded values usable after commit."""
    maker = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    return Sessions(maker, one_writer=engine.dialect.name == "sqlite")


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _upsert(
    dialect: str,
    model: type[SQLModel],
    values: Mapping[str, Any],
    keys: Sequence[str],
    update_set: Mapping[str, Any] | None = None,
) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, atomic on both backends.

    Every non-key column takes the new value unless `update_set` says otherwise.
    """
    table = _table(model)
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = stmt.values(dict(values))
    new = {name: stmt.excluded[name] for name in values if name not in keys}
    new.update(update_set or {})
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=new)


class _Repository:
    """Shared plumbing: the session factory and the dialect name."""

    def __init__(self, sessions: Sessions, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect


class SqlUserRepository(_Repository):
    """Chat user → external user mapping."""

    async def get(self, user_key: str) -> StoredUser | None:
        """The stored mapping, or None."""
        async with self._sessions() as session:
            row = await session.get(ExternalUserRow, user_key)
        if row is None:
            return None
        return StoredUser(**row.model_dump(exclude={"created_at", "updated_at"}))

    async def save(self, user: StoredUser) -> None:
        """Insert or update by `user_key`, keeping the first `created_at`."""
        now = utcnow()
        # Every field of the value is a column: a field without one fails loudly here.
        values = {**asdict(user), "created_at": now, "updated_at": now}
        table = _table(ExternalUserRow)
        stmt = _upsert(
            self._dialect, ExternalUserRow, values, ["user_key"], {"created_at": table.c.created_at}
        )
        async with self._sessions.begin() as session:
            await session.exec(stmt)


def _thread_session(row: ThreadSessionRow) -> ThreadSession:
    return ThreadSession(
        thread=ThreadRef(row.platform, row.workspace_id, row.channel_id, row.thread_id),
        **row.model_dump(exclude={*_THREAD_COLUMNS, "updated_at"}),
    )


def _thread_match(thread: ThreadRef) -> tuple[ColumnElement[bool], ...]:
    return (
        col(ThreadSessionRow.platform) == thread.platform,
        col(ThreadSessionRow.workspace_id) == thread.workspace_id,
        col(ThreadSessionRow.channel_id) == thread.channel_id,
        col(ThreadSessionRow.thread_id) == thread.thread_id,
    )


class SqlSessionRepository(_Repository):
    """Thread → Samsar session mapping."""

    async def get(self, thread: ThreadRef) -> ThreadSession | None:
        """The active session of the thread, or None."""
        key = (thread.platform, thread.workspace_id, thread.channel_id, thread.thread_id)
        async with self._sessions() as session:
            row = await session.get(ThreadSessionRow, key)
        return None if row is None else _thread_session(row)

    async def save(self, session: ThreadSession) -> None:
        """Insert or replace the thread's row.

        Without an explicit `created_at`, an update of the same session keeps its creation
        time and a new session of the thread starts now.
        """
        now = utcnow()
        values = {
            **asdict(session.thread),
            **asdict(session),
            "created_at": session.created_at or now,
            "updated_at": now,
        }
        del values["thread"]
        table = _table(ThreadSessionRow)
        keep: dict[str, Any] = {}
        if session.created_at is None:
            keep["created_at"] = case(
                (table.c.session_id == session.session_id, table.c.created_at),
                else_=literal(now, UTCDateTime()),
            )
        stmt = _upsert(self._dialect, ThreadSessionRow, values, _THREAD_COLUMNS, keep)
        async with self._sessions.begin() as db:
            await db.exec(stmt)

    async def advance(
        self,
        thread: ThreadRef,
        session_id: str,
        last_response_id: str | None,
        fingerprint: str | None,
    ) -> bool:
        """After a completion: remember its response and prompt, only while the thread is still
        on `session_id` (a reset meanwhile wins); True when it was."""
        stmt = (
            update(ThreadSessionRow)
            .where(
                *_thread_match(thread),
                col(ThreadSessionRow.session_id) == session_id,
            )
            .values(
                last_response_id=func.coalesce(
                    literal(last_response_id), ThreadSessionRow.last_response_id
                ),
                prompt_fingerprint=fingerprint,
                updated_at=utcnow(),
            )
        )
        async with self._sessions.begin() as db:
            result = await db.exec(stmt)
        return bool(result.rowcount)

    async def delete(self, thread: ThreadRef) -> bool:
        """Forget the thread's session; True when there was one."""
        stmt = delete(ThreadSessionRow).where(*_thread_match(thread))
        async with self._sessions.begin() as session:
            result = await session.exec(stmt)
        return bool(result.rowcount)

    async def latest_owned(
        self, platform: str, workspace_id: str, channel_id: str, owner_key: str
    ) -> ThreadSession | None:
        """The owner's most recently used session in a channel (the primary key's prefix)."""
        stmt = (
            select(ThreadSessionRow)
            .where(
                col(ThreadSessionRow.platform) == platform,
                col(ThreadSessionRow.workspace_id) == workspace_id,
                col(ThreadSessionRow.channel_id) == channel_id,
                col(ThreadSessionRow.owner_key) == owner_key,
            )
            .order_by(col(ThreadSessionRow.updated_at).desc())
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.exec(stmt)).first()
        return None if row is None else _thread_session(row)


class SqlPromptRepository(_Repository):
    """Admin prompts by workspace ("" channel) or channel."""

    async def get(self, platform: str, workspace_id: str, channel_id: str) -> AdminPrompt | None:
        """Exactly this scope's prompt."""
        async with self._sessions() as session:
            row = await session.get(AdminPromptRow, (platform, workspace_id, channel_id))
        return None if row is None else AdminPrompt(**row.model_dump())

    async def set(self, prompt: AdminPrompt) -> None:
        """Insert or replace this scope's prompt."""
        values = {**asdict(prompt), "updated_at": prompt.updated_at or utcnow()}
        keys = ["platform", "workspace_id", "channel_id"]
        stmt = _upsert(self._dialect, AdminPromptRow, values, keys)
        async with self._sessions.begin() as session:
            await session.exec(stmt)

    async def clear(self, platform: str, workspace_id: str, channel_id: str) -> bool:
        """Remove this scope's prompt; True when there was one."""
        stmt = delete(AdminPromptRow).where(
            col(AdminPromptRow.platform) == platform,
            col(AdminPromptRow.workspace_id) == workspace_id,
            col(AdminPromptRow.channel_id) == channel_id,
        )
        async with self._sessions.begin() as session:
            result = await session.exec(stmt)
        return bool(result.rowcount)


class SqlAuditLog(_Repository):
    """Append-only log of admin actions."""

    async def record(self, entry: AuditEntry) -> None:
        """Append one entry."""
        values = {**asdict(entry), "created_at": entry.created_at or utcnow()}
        async with self._sessions.begin() as session:
            await session.exec(insert(AuditRow).values(values))

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first (ties broken by insertion order)."""
        stmt = (
            select(AuditRow)
            .order_by(col(AuditRow.created_at).desc(), col(AuditRow.id).desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.exec(stmt)).all()
        return [AuditEntry(**row.model_dump(exclude={"id"})) for row in rows]

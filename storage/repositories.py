"""SQL implementations of the core repository ports: each call one unit of work (one short
transaction) on the store's `Database`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any, TypeVar

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Float,
    RowMapping,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert
from sqlmodel import SQLModel

from core.models import (
    AdminPrompt,
    AuditEntry,
    Rate,
    StoredUser,
    ThreadRef,
    ThreadSession,
)
from core.ports import PromptsInForce
from storage import direct
from storage.database import Database
from storage.tables import (
    AdminPromptRow,
    AuditRow,
    ExternalUserRow,
    MemberRateRow,
    ThreadSessionRow,
    UTCDateTime,
    utcnow,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_THREAD_COLUMNS = ("platform", "workspace_id", "channel_id", "thread_id")


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


_users = _table(ExternalUserRow)
_sessions = _table(ThreadSessionRow)
_prompts = _table(AdminPromptRow)
_audit = _table(AuditRow)
_rates = _table(MemberRateRow)

# The statements of every turn, built once (SQLAlchemy caches their compiled form).
_USER_BY_KEY = select(_users).where(_users.c.user_key == bindparam("user_key"))
_PERSONA = select(_users.c.persona).where(_users.c.user_key == bindparam("user_key"))
# Bind names apart from the column names: an UPDATE reserves those for its SET clause.
_THREAD_MATCH = and_(*(_sessions.c[name] == bindparam(f"t_{name}") for name in _THREAD_COLUMNS))
_SESSION_OF_THREAD = select(_sessions).where(_THREAD_MATCH)
SESSION_OWNER = select(_sessions.c.owner_key, _sessions.c.owner_display).where(_THREAD_MATCH)


_PROMPTS_OF_THREAD = select(_prompts).where(
    _prompts.c.platform == bindparam("platform"),
    _prompts.c.workspace_id == bindparam("workspace_id"),
    _prompts.c.channel_id.in_([literal(""), bindparam("channel_id")]),  # the key's index
)
ADVANCE = (
    update(_sessions)
    .where(_THREAD_MATCH, _sessions.c.session_id == bindparam("t_session_id"))
    .values(
        last_response_id=func.coalesce(
            bindparam("new_response_id", type_=_sessions.c.last_response_id.type),
            _sessions.c.last_response_id,
        ),
        prompt_fingerprint=bindparam("new_fingerprint", type_=_sessions.c.prompt_fingerprint.type),
        updated_at=bindparam("new_updated_at", type_=UTCDateTime()),
    )
)


def _upsert(
    dialect: str,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update_set: Mapping[str, Any] | None = None,
) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, atomic on both backends.

    Every non-key column takes the new value unless `update_set` says otherwise.
    """
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = stmt.values(dict(values))
    new = {name: stmt.excluded[name] for name in values if name not in keys}
    new.update(update_set or {})
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=new)


def _pick(row: Mapping[Any, Any], cls: type[Any], *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The row's values for the dataclass `cls`'s fields."""
    return {f.name: row[f.name] for f in fields(cls) if f.name not in skip}


def thread_params(thread: ThreadRef) -> dict[str, str]:
    """The bind parameters of `_THREAD_MATCH` that name a thread's row."""
    return {
        "t_platform": thread.platform,
        "t_workspace_id": thread.workspace_id,
        "t_channel_id": thread.channel_id,
        "t_thread_id": thread.thread_id,
    }


def thread_session(row: Mapping[Any, Any]) -> ThreadSession:
    """A thread_sessions row as the core's value."""
    return ThreadSession(
        thread=ThreadRef(row["platform"], row["workspace_id"], row["channel_id"], row["thread_id"]),
        **_pick(row, ThreadSession, skip=("thread",)),
    )


def session_of(conn: Connection, thread: ThreadRef) -> ThreadSession | None:
    """Unit of work: the thread's session, or None."""
    row = conn.execute(_SESSION_OF_THREAD, thread_params(thread)).mappings().first()
    return None if row is None else thread_session(row)


class _Repository:
    """Shared plumbing: the database and its dialect name."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect = db.dialect


class SqlUserRepository(_Repository):
    """Chat user → external user mapping."""

    async def get(self, user_key: str) -> StoredUser | None:
        """The stored mapping, or None."""
        return await self._db.run_autocommit(_get_user, user_key)

    async def save(self, user: StoredUser) -> None:
        """Insert or update by `user_key`, keeping the first `created_at`."""
        now = utcnow()
        # Every field of the value is a column: a field without one fails loudly here.
        values = {**asdict(user), "created_at": now, "updated_at": now}
        stmt = _upsert(
            self._dialect, _users, values, ["user_key"], {"created_at": _users.c.created_at}
        )
        await self._db.run_autocommit(_execute, stmt)


def _get_user(conn: Connection, user_key: str) -> StoredUser | None:
    row = conn.execute(_USER_BY_KEY, {"user_key": user_key}).mappings().first()
    return None if row is None else StoredUser(**_pick(row, StoredUser))


def _execute(conn: Connection, stmt: Any, params: Mapping[str, Any] | None = None) -> int:
    """Unit of work: one statement; the rows it touched."""
    return int(conn.execute(stmt, dict(params or {})).rowcount or 0)


class SqlSessionRepository(_Repository):
    """Thread → Samsar session mapping."""

    async def get(self, thread: ThreadRef) -> ThreadSession | None:
        """The active session of the thread, or None."""
        return await self._db.run_autocommit(session_of, thread)

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
        keep: dict[str, Any] = {}
        if session.created_at is None:
            keep["created_at"] = case(
                (_sessions.c.session_id == session.session_id, _sessions.c.created_at),
                else_=literal(now, UTCDateTime()),
            )
        stmt = _upsert(self._dialect, _sessions, values, _THREAD_COLUMNS, keep)
        await self._db.run_autocommit(_execute, stmt)

    async def advance(
        self,
        thread: ThreadRef,
        session_id: str,
        last_response_id: str | None,
        fingerprint: str | None,
    ) -> bool:
        """After a completion: remember its response and prompt, only while the thread is still
        on `session_id` (a reset meanwhile wins); True when it was."""
        return bool(
            await self._db.run_autocommit(
                _execute,
                ADVANCE,
                advance_params(thread, session_id, last_response_id, fingerprint),
            )
        )

    async def delete(self, thread: ThreadRef) -> bool:
        """Forget the thread's session; True when there was one."""
        stmt = delete(_sessions).where(_THREAD_MATCH)
        return bool(await self._db.run_autocommit(_execute, stmt, thread_params(thread)))

    async def latest_owned(
        self, platform: str, workspace_id: str, channel_id: str, owner_key: str
    ) -> ThreadSession | None:
        """The owner's most recently used session in a channel (the primary key's prefix)."""
        stmt = (
            select(_sessions)
            .where(
                _sessions.c.platform == platform,
                _sessions.c.workspace_id == workspace_id,
                _sessions.c.channel_id == channel_id,
                _sessions.c.owner_key == owner_key,
            )
            .order_by(_sessions.c.updated_at.desc())
            .limit(1)
        )
        row = await self._db.run_autocommit(_first, stmt)
        return None if row is None else thread_session(row)


def advance_params(
    thread: ThreadRef, session_id: str, last_response_id: str | None, fingerprint: str | None
) -> dict[str, Any]:
    """The bind parameters of `ADVANCE`."""
    return {
        **thread_params(thread),
        "t_session_id": session_id,
        "new_response_id": last_response_id,
        "new_fingerprint": fingerprint,
        "new_updated_at": utcnow(),
    }


def _first(conn: Connection, stmt: Any) -> RowMapping | None:
    return conn.execute(stmt).mappings().first()


class SqlPromptRepository(_Repository):
    """Admin prompts by workspace ("" channel) or channel."""

    async def get(self, platform: str, workspace_id: str, channel_id: str) -> AdminPrompt | None:
        """Exactly this scope's prompt."""
        stmt = select(_prompts).where(
            _prompts.c.platform == platform,
            _prompts.c.workspace_id == workspace_id,
            _prompts.c.channel_id == channel_id,
        )
        row = await self._db.run_autocommit(_first, stmt)
        return None if row is None else AdminPrompt(**_pick(row, AdminPrompt))

    async def in_force(
        self, platform: str, workspace_id: str, channel_id: str, member_key: str | None = None
    ) -> tuple[AdminPrompt | None, AdminPrompt | None, str | None]:
        """The workspace's prompt, the channel's and the member's persona, in one unit."""
        return await self._db.run_autocommit(
            prompts_in_force, platform, workspace_id, channel_id, member_key
        )

    async def set(self, prompt: AdminPrompt) -> None:
        """Insert or replace this scope's prompt."""
        values = {**asdict(prompt), "updated_at": prompt.updated_at or utcnow()}
        keys = ["platform", "workspace_id", "channel_id"]
        await self._db.run_autocommit(_execute, _upsert(self._dialect, _prompts, values, keys))

    async def clear(self, platform: str, workspace_id: str, channel_id: str) -> bool:
        """Remove this scope's prompt; True when there was one."""
        stmt = delete(_prompts).where(
            _prompts.c.platform == platform,
            _prompts.c.workspace_id == workspace_id,
            _prompts.c.channel_id == channel_id,
        )
        return bool(await self._db.run_autocommit(_execute, stmt))


def prompts_in_force(
    conn: Connection, platform: str, workspace_id: str, channel_id: str, member_key: str | None
) -> tuple[AdminPrompt | None, AdminPrompt | None, str | None]:
    """Unit of work (or a step of one): the workspace's prompt, the channel's, the persona."""
    params = {"platform": platform, "workspace_id": workspace_id, "channel_id": channel_id}
    found = {
        row["channel_id"]: AdminPrompt(**_pick(row, AdminPrompt))
        for row in conn.execute(_PROMPTS_OF_THREAD, params).mappings()
    }
    persona = None
    if member_key is not None:
        persona = conn.execute(_PERSONA, {"user_key": member_key}).scalar()
    return found.get(""), found.get(channel_id) if channel_id else None, persona


_workspace_prompt = _prompts.alias("workspace_prompt")
_channel_prompt = _prompts.alias("channel_prompt")
_PROMPT_FIELDS = ("text", "updated_by", "updated_at")
_SESSIONS_WITH_PROMPTS = _sessions.outerjoin(
    _workspace_prompt,
    and_(
        _workspace_prompt.c.platform == _sessions.c.platform,
        _workspace_prompt.c.workspace_id == _sessions.c.workspace_id,
        _workspace_prompt.c.channel_id == literal(""),
    ),
).outerjoin(
    _channel_prompt,
    and_(
        _channel_prompt.c.platform == _sessions.c.platform,
        _channel_prompt.c.workspace_id == _sessions.c.workspace_id,
        _channel_prompt.c.channel_id == _sessions.c.channel_id,
        _sessions.c.channel_id != literal(""),
    ),
)
_OWNER_PERSONA = select(_users.c.persona).where(_users.c.user_key == _sessions.c.owner_key)
_IN_FORCE_COLUMNS = (
    *(_workspace_prompt.c[name].label(f"workspace_{name}") for name in _PROMPT_FIELDS),
    *(_channel_prompt.c[name].label(f"channel_{name}") for name in _PROMPT_FIELDS),
)


def session_in_force_and(*more: ColumnElement[Any]) -> Select[Any]:
    """A thread's session with the prompts in force and the persona of the member
    `user_key` (as `prompts_in_force` tells them), and the columns `more`, as one row even
    when the thread has no session (its columns then NULL): a unit's reads in one statement.
    `in_force_of` reads the row."""
    one = select(literal(1).label("one")).subquery("one")
    return select(
        _sessions,
        _PERSONA.scalar_subquery().label("member_persona"),
        *_IN_FORCE_COLUMNS,
        *more,
    ).select_from(one.outerjoin(_SESSIONS_WITH_PROMPTS, _THREAD_MATCH))


def in_force_of(
    thread: ThreadRef, row: Mapping[Any, Any]
) -> tuple[ThreadSession, PromptsInForce] | None:
    """The session and prompts in force a `session_in_force_and` row tells; None without a
    session."""
    if row["session_id"] is None:
        return None
    return thread_session(row), _in_force(thread, row)


@functools.cache
def _sessions_in_force(count: int) -> Select[Any]:
    """`count` threads' sessions, each with the prompts in force and its owner's persona, in
    one statement (bind parameters `t_{column}_{n}`, a list that is not expanded: the
    statement is compiled once per count)."""
    threads = [
        and_(*(_sessions.c[name] == bindparam(f"t_{name}_{n}") for name in _THREAD_COLUMNS))
        for n in range(count)
    ]
    return (
        select(
            _sessions, _OWNER_PERSONA.scalar_subquery().label("member_persona"), *_IN_FORCE_COLUMNS
        )
        .select_from(_SESSIONS_WITH_PROMPTS)
        .where(or_(*threads))
    )


AT_ONCE = 64
"""Items one statement over a list takes (threads looked up, turns finished...); more go in
several."""


def in_statements(items: Sequence[T]) -> Iterator[list[T]]:
    """`items` in pieces of at most `AT_ONCE`, each made up to a power of two by repeating its
    last item (harmless in an IN list, an OR or a CASE): a statement over a list is compiled
    (and prepared) once per length, so there are seven lengths, not sixty-four."""
    for first in range(0, len(items), AT_ONCE):
        piece = list(items[first : first + AT_ONCE])
        piece += piece[-1:] * ((1 << (len(piece) - 1).bit_length()) - len(piece))
        yield piece


def sessions_in_force(
    conn: Connection, threads: Sequence[ThreadRef]
) -> dict[ThreadRef, tuple[ThreadSession, PromptsInForce]]:
    """A step of a unit of work: of these threads, those with a session, each with the prompts
    in force there and its owner's persona (as `prompts_in_force` tells them), in one
    statement for up to `AT_ONCE` threads."""
    found: dict[ThreadRef, tuple[ThreadSession, PromptsInForce]] = {}
    for some in in_statements(threads):
        params = {
            f"{name}_{n}": value
            for n, thread in enumerate(some)
            for name, value in thread_params(thread).items()
        }
        for row in conn.execute(_sessions_in_force(len(some)), params).mappings():
            session = thread_session(row)
            found[session.thread] = (session, _in_force(session.thread, row))
    return found


def _in_force(thread: ThreadRef, row: Mapping[Any, Any]) -> PromptsInForce:
    scopes = (("workspace", ""), ("channel", thread.channel_id))
    workspace, channel = (
        None
        if row[f"{scope}_text"] is None
        else AdminPrompt(
            thread.platform,
            thread.workspace_id,
            channel_id,
            **{name: row[f"{scope}_{name}"] for name in _PROMPT_FIELDS},
        )
        for scope, channel_id in scopes
    )
    return workspace, channel, row["member_persona"]


class SqlAuditLog(_Repository):
    """Append-only log of admin actions."""

    async def record(self, entry: AuditEntry) -> None:
        """Append one entry."""
        values = {**asdict(entry), "created_at": entry.created_at or utcnow()}
        await self._db.run_autocommit(_execute, insert(_audit).values(values))

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first (ties broken by insertion order)."""
        stmt = select(_audit).order_by(_audit.c.created_at.desc(), _audit.c.id.desc()).limit(limit)
        return await self._db.run_autocommit(_audit_entries, stmt)


def _audit_entries(conn: Connection, stmt: Any) -> list[AuditEntry]:
    return [AuditEntry(**_pick(row, AuditEntry)) for row in conn.execute(stmt).mappings()]


# --- members' token buckets --------------------------------------------------------------

_level = _rates.c.tokens + (bindparam("now", type_=Float) - _rates.c.updated_at) * bindparam(
    "per_second", type_=Float
)
_burst = bindparam("burst", type_=Float)
_REFILLED = case((_level > _burst, _burst), else_=_level)
_TAKE_TOKEN = (
    update(_rates)
    .where(_rates.c.user_key == bindparam("key"), _REFILLED >= 1)
    .values(tokens=_REFILLED - 1, updated_at=bindparam("now", type_=Float))
    .returning(_rates.c.tokens)
)
_BUCKET = select(_rates.c.tokens, _rates.c.updated_at).where(_rates.c.user_key == bindparam("key"))


def token_cte() -> CTE:
    """The taking of a token as a data-modifying `WITH` (PostgreSQL), a row when taken; its
    parameters are `token_params`'."""
    return _TAKE_TOKEN.cte("token")


def token_params(user_key: str, rate: Rate, now: float) -> dict[str, Any]:
    """The parameters of taking a token from `user_key`'s bucket at `now`."""
    return {"key": user_key, "now": now, "per_second": rate.per_second, "burst": rate.burst}


def take_token(
    conn: Connection, user_key: str, rate: Rate, now: float, *, tried: bool = False
) -> float:
    """A step of a unit of work: take a token from the member's bucket. 0.0 when taken; else
    the seconds until one is there. One guarded UPDATE, so replicas never take the same
    token; a member's first turn creates the bucket (full, less this turn). `tried`: that
    UPDATE has just found no token (`token_cte`), so the bucket is looked at first."""
    params = token_params(user_key, rate, now)
    for attempt in range(3):
        if (attempt or not tried) and direct.fetch(conn, _TAKE_TOKEN, params):
            return 0.0
        found = direct.fetch(conn, _BUCKET, params)
        row = found[0] if found else None
        if row is None:
            try:  # (autocommit on PostgreSQL; SQLite has one writer, so no race there)
                conn.execute(
                    insert(_rates).values(user_key=user_key, tokens=rate.burst - 1, updated_at=now)
                )
                return 0.0
            except IntegrityError:
                continue  # another replica made it at the same moment: take from theirs
        tokens, updated_at = float(row.tokens), float(row.updated_at)
        level = min(rate.burst, tokens + (now - updated_at) * rate.per_second)
        if level < 1:
            return (1 - level) / rate.per_second
    return 0.0  # the bucket kept changing under us: let this one through

"""The SQLModel tables behind the repositories; nothing outside `storage` sees these rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Index, LargeBinary, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from storage.slack_tables import SLACK_TABLES


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python, on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so the value is stored as
    naive UTC and the zone is put back on the way out. Naive inputs are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; strip the zone only where the backend cannot store it."""
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the driver produced."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExternalUserRow(SQLModel, table=True):
    """A chat user mapped to a Samsar external user."""

    __tablename__ = "external_users"
    __table_args__ = (
        Index("ix_external_users_provider_external_user_id", "provider", "external_user_id"),
    )

    user_key: str = Field(primary_key=True)
    platform: str
    provider: str
    external_user_id: str
    workspace_id: str | None = None
    display_name: str | None = None
    bootstrapped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    persona: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ThreadSessionRow(SQLModel, table=True):
    """The Samsar session of one thread; the four thread columns are the key."""

    __tablename__ = "thread_sessions"
    __table_args__ = (
        Index("ix_thread_sessions_session_id", "session_id"),
        Index("ix_thread_sessions_owner_key", "owner_key"),
    )

    platform: str = Field(primary_key=True)
    workspace_id: str = Field(primary_key=True)
    channel_id: str = Field(primary_key=True)
    thread_id: str = Field(primary_key=True)
    session_id: str
    owner_key: str
    owner_display: str | None = None
    last_response_id: str | None = None
    prompt_fingerprint: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AdminPromptRow(SQLModel, table=True):
    """An admin prompt; channel_id "" is the workspace scope."""

    __tablename__ = "admin_prompts"
    platform: str = Field(primary_key=True)
    workspace_id: str = Field(primary_key=True)
    channel_id: str = Field(default="", primary_key=True)
    text: str = Field(sa_type=Text)
    updated_by: str
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


OPEN_TURNS = "status IN ('received', 'running', 'completed')"


class TurnRow(SQLModel, table=True):
    """One member action in the turn ledger; `event_key` is unique so redeliveries drop.

    `request`, `call`, `reply` and `error` are JSON written by `storage.turns`; the images of
    a reply live in `turn_images` until the turn is finished.
    """

    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("event_key", name="uq_turns_event_key"),
        Index("ux_turns_thread_key_seq", "thread_key", "seq", unique=True),
        Index("ix_turns_user_key_created_at", "user_key", "created_at"),
        Index("ix_turns_status_created_at", "status", "created_at"),
        # Open turns only: what claims and the line look through stays small however long
        # the ledger grows.
        Index(
            "ix_turns_open_created_at",
            "created_at",
            "turn_id",
            postgresql_where=text(OPEN_TURNS),
            sqlite_where=text(OPEN_TURNS),
        ),
        # An earlier open turn of a candidate's thread, looked up for that thread alone.
        Index(
            "ix_turns_open_thread_key_seq",
            "thread_key",
            "seq",
            postgresql_where=text(OPEN_TURNS),
            sqlite_where=text(OPEN_TURNS),
        ),
    )

    turn_id: str = Field(primary_key=True)
    event_key: str
    platform: str
    thread_key: str
    seq: int = 0  # its place in the thread: one more than the thread's highest at insert
    user_key: str
    kind: str
    status: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    latency_ms: int | None = None
    credits_charged: float | None = None
    error: str | None = Field(default=None, sa_type=Text)
    request: str | None = Field(default=None, sa_type=Text)
    route: str = Field(default="", sa_type=Text)
    posted: str = Field(default="", sa_type=Text)
    call: str | None = Field(default=None, sa_type=Text)
    reply: str | None = Field(default=None, sa_type=Text)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    runs: int = 0
    delivery_attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    feedback: str | None = None  # the member's 👍 ("up") or 👎 ("down") on the answer


class TurnImageRow(SQLModel, table=True):
    """A generated image of a completed turn, kept until the turn is delivered."""

    __tablename__ = "turn_images"

    turn_id: str = Field(primary_key=True)
    position: int = Field(primary_key=True)
    mime: str
    filename: str
    revised_prompt: str | None = Field(default=None, sa_type=Text)
    data: bytes = Field(sa_type=LargeBinary)


class MemberRateRow(SQLModel, table=True):
    """A member's token bucket of turns: tokens left at `updated_at` (seconds since the
    epoch, so the refill is plain arithmetic on both databases)."""

    __tablename__ = "member_rates"

    user_key: str = Field(primary_key=True)
    tokens: float
    updated_at: float


class AuditRow(SQLModel, table=True):
    """One admin action, append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    actor_key: str
    action: str
    platform: str
    workspace_id: str
    channel_id: str
    detail: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


ALL_TABLES: tuple[str, ...] = (
    "external_users",
    "thread_sessions",
    "admin_prompts",
    "turns",
    "turn_images",
    "audit_log",
    "member_rates",
    *SLACK_TABLES,
)

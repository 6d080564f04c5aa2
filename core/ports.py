"""The ports core depends on: the Samsar API and the store. Adapters of these live outside core."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from core.models import (
    AdminPrompt,
    AuditEntry,
    Balance,
    CheckoutLink,
    Completion,
    CompletionRequest,
    ExternalIdentity,
    LoginLink,
    StoredUser,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnStatus,
)


class SamsarPort(Protocol):
    """The Samsar routes the bot uses. Every POST takes the idempotency key its retries reuse."""

    async def bootstrap_user(self, user: ExternalIdentity, *, idempotency_key: str) -> Balance:
        """POST external_users/session: create or refresh the external user."""
        ...

    async def create_assistant_session(
        self, user: ExternalIdentity, *, idempotency_key: str
    ) -> str:
        """POST external_users/utils/assistant_session: a blank session; returns session_id."""
        ...

    async def complete(
        self, user: ExternalIdentity, request: CompletionRequest, *, idempotency_key: str
    ) -> Completion:
        """POST external_users/assistant/completion, billed to the external user."""
        ...

    async def set_user_prompt(
        self, user: ExternalIdentity, prompt: str | None, *, idempotency_key: str
    ) -> str | None:
        """POST external_users/assistant/set_system_prompt; None clears; returns what is stored."""
        ...

    async def credits(self, user: ExternalIdentity) -> Balance:
        """GET external_users/credits with the identity as query."""
        ...

    async def recharge_link(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> CheckoutLink:
        """POST external_users/credits/recharge: a checkout link."""
        ...

    async def grant_credits(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> Balance:
        """POST external_users/credits/grant (operator)."""
        ...

    async def login_link(
        self, user: ExternalIdentity, *, idempotency_key: str, redirect: str | None = None
    ) -> LoginLink:
        """POST external_users/create_login_token: a short-lived Studio link."""
        ...

    async def set_account_prompt(self, prompt: str | None, *, idempotency_key: str) -> str | None:
        """POST assistant/set_system_prompt (operator); None clears."""
        ...


class UserRepository(Protocol):
    """Chat user → external user mapping."""

    async def get(self, user_key: str) -> StoredUser | None:
        """The stored mapping, or None."""
        ...

    async def save(self, user: StoredUser) -> None:
        """Insert or update by `user_key`."""
        ...


class SessionRepository(Protocol):
    """Thread → Samsar session mapping."""

    async def get(self, thread: ThreadRef) -> ThreadSession | None:
        """The active session of the thread, or None."""
        ...

    async def save(self, session: ThreadSession) -> None:
        """Insert or replace the thread's active session."""
        ...

    async def delete(self, thread: ThreadRef) -> bool:
        """Forget the thread's session (reset); True when there was one."""
        ...

    async def latest_owned(
        self, platform: str, workspace_id: str, channel_id: str, owner_key: str
    ) -> ThreadSession | None:
        """The owner's most recently used session in a channel, or None."""
        ...


class PromptRepository(Protocol):
    """Admin prompts by workspace ("" channel) or channel."""

    async def get(self, platform: str, workspace_id: str, channel_id: str) -> AdminPrompt | None:
        """Exactly this scope's prompt (channel_id "" for the workspace)."""
        ...

    async def set(self, prompt: AdminPrompt) -> None:
        """Insert or replace this scope's prompt."""
        ...

    async def clear(self, platform: str, workspace_id: str, channel_id: str) -> bool:
        """Remove this scope's prompt; True when there was one."""
        ...


class TurnLedger(Protocol):
    """The turn ledger: one row per member action, written before Samsar is called."""

    async def begin(self, turn: Turn) -> bool:
        """Insert the turn; False (and nothing written) when its event_key already exists."""
        ...

    async def finish(
        self,
        turn_id: str,
        status: TurnStatus,
        *,
        latency_ms: int | None = None,
        credits_charged: float | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of a turn."""
        ...

    async def get(self, event_key: str) -> Turn | None:
        """The turn of an event key, or None."""
        ...


class AuditLog(Protocol):
    """Append-only log of admin actions."""

    async def record(self, entry: AuditEntry) -> None:
        """Append one entry."""
        ...

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
        ...


class ThreadLocks(Protocol):
    """A lock per thread that holds across replicas (a no-op beside core's own lock on SQLite)."""

    def hold(self, thread_key: str) -> AbstractAsyncContextManager[None]:
        """Hold the thread's lock for the duration of the block."""
        ...


class Store(Protocol):
    """Everything core keeps (read-only members, so any implementing class fits)."""

    @property
    def users(self) -> UserRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...
    @property
    def prompts(self) -> PromptRepository: ...
    @property
    def turns(self) -> TurnLedger: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def locks(self) -> ThreadLocks: ...

"""The ports core depends on: the Samsar API and the store. Adapters of these live outside core."""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.errors import BotError
from core.models import (
    AdminPrompt,
    AuditEntry,
    Balance,
    CheckoutLink,
    Completion,
    CompletionRequest,
    ExternalIdentity,
    LoginLink,
    Prepared,
    Rate,
    Recorded,
    Reply,
    SamsarCall,
    StoredUser,
    Take,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnRequest,
    TurnStatus,
    WaitingTurn,
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

    async def advance(
        self,
        thread: ThreadRef,
        session_id: str,
        last_response_id: str | None,
        fingerprint: str | None,
    ) -> bool:
        """After a completion: keep its response id and prompt fingerprint, only while the
        thread is still on `session_id` (a reset meanwhile wins); True when it was."""
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

    async def in_force(
        self, platform: str, workspace_id: str, channel_id: str, member_key: str | None = None
    ) -> tuple[AdminPrompt | None, AdminPrompt | None, str | None]:
        """The workspace's prompt, the channel's (None for a workspace-wide thread, whose
        channel_id is ""), and the member's persona as last set through the bot, at once."""
        ...

    async def set(self, prompt: AdminPrompt) -> None:
        """Insert or replace this scope's prompt."""
        ...

    async def clear(self, platform: str, workspace_id: str, channel_id: str) -> bool:
        """Remove this scope's prompt; True when there was one."""
        ...


PromptsInForce = tuple[AdminPrompt | None, AdminPrompt | None, str | None]
"""A thread's workspace prompt, its channel's, and the member's persona (`in_force`)."""

FixCall = Callable[[Turn, ThreadSession, PromptsInForce], SamsarCall | None]
"""The completion body of a turn just claimed, from its thread's session and the prompts in
force, read in the claim's own unit of work; None leaves it to the run."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A turn its worker is done with, finished (as `TurnLedger.finish` does) in its next
    claim's unit of work."""

    turn_id: str
    status: TurnStatus
    images: bool = True  # whether its outcome may have kept pictures (to drop)


class TurnLedger(Protocol):
    """The turn ledger: one row per member action, the source of truth of its life.

    Every write a worker makes names the lease it holds (`owner`) and changes nothing when
    the lease went to someone else: a worker that lost its turn can never overwrite it.
    """

    async def record(self, turn: Turn) -> bool:
        """Insert a received turn; False (and nothing written) when its event_key exists."""
        ...

    async def record_in_thread(
        self,
        turn: Turn,
        thread: ThreadRef,
        *,
        rate: Rate | None = None,
        fix: FixCall | None = None,
        take: Take | None = None,
    ) -> Recorded:
        """`record`, unless the thread is another member's conversation: its session's owner,
        or before its first answer the member whose open turn started it (then nothing is
        written and `owner` says whose it is); or, with a `rate`, unless the member is over it
        (nothing written, `wait` seconds until a turn is allowed; a redelivery of a recorded
        event is not counted). The member's allowance is one for every replica. With `fix`, a
        turn without a body whose thread is on a session, with no turn of it left to run
        before this one, is recorded with the body `fix` makes (the prompts in force as it is
        recorded): its claim then reads nothing more (see `claim_some`). With `take`, a turn
        to run is leased to its recorder as it is written, when no turn of its thread is open
        (judged in the same snapshot that numbers it), and comes back as `taken`: there is no
        claim to wait for."""
        ...

    async def claim(self, owner: str, platforms: Collection[str], lease: timedelta) -> Turn | None:
        """Lease the oldest turn that has work to do (to run, resume or deliver), or None.

        A turn is claimable when its lease is free or expired, its delivery retry is due,
        and no earlier open turn of its thread exists: so the turns of a thread run one at a
        time, in arrival order, and exactly one worker gets each.
        """
        ...

    async def claim_some(
        self,
        owner: str,
        platforms: Collection[str],
        lease: timedelta,
        limit: int,
        *,
        fix: FixCall | None = None,
        finished: Collection[Finished] = (),
    ) -> list[Turn]:
        """Lease up to `limit` turns as `claim` does (each the first of its own thread), oldest
        first, in one go. With `fix`, a turn to run that has no completion body yet and whose
        thread has a session gets the body `fix` makes, kept (as `save_call` does) in the same
        unit of work, so a warm turn needs no reads of its own before Samsar is called.
        `finished` turns (this owner's) are finished first, in that same unit: the next turn
        of their threads may be claimed at once."""
        ...

    async def waiting(self, platforms: Collection[str], limit: int) -> list[WaitingTurn]:
        """Turns not started yet (received, no lease), oldest first, up to `limit`."""
        ...

    async def renew(self, turn_id: str, owner: str, lease: timedelta) -> bool:
        """Extend the lease; False when it is no longer `owner`'s."""
        ...

    async def save_call(self, turn_id: str, owner: str, call: SamsarCall) -> bool:
        """Keep the completion body fixed before the first Samsar call."""
        ...

    async def save_feedback(self, turn_id: str, user_key: str, value: str) -> bool:
        """Keep the turn's member's 👍/👎 ("up"/"down"); False when gone or not theirs."""
        ...

    async def save_posted(self, turn_id: str, posted: str) -> None:
        """Keep what the adapter has posted so far for this turn."""
        ...

    async def save_posted_while_waiting(self, turn_id: str, posted: str) -> bool:
        """`save_posted`, only while the turn is received and not leased; True when kept."""
        ...

    async def complete(
        self,
        turn_id: str,
        owner: str,
        outcome: Reply | BotError,
        *,
        latency_ms: int | None,
    ) -> bool:
        """Store the outcome (status completed); False when the lease was lost. A reply's
        `advance` moves the thread's session in the same write (only while the thread is still
        on that session: a reset meanwhile wins)."""
        ...

    async def postpone(
        self, turn_id: str, owner: str, *, retry_at: datetime, delivery_attempts: int
    ) -> None:
        """A delivery failed: free the lease until `retry_at`."""
        ...

    async def release(self, turn_id: str, owner: str) -> None:
        """Give the lease up now (shutdown): another worker may resume the turn at once."""
        ...

    async def finish(
        self, turn_id: str, owner: str, status: TurnStatus, *, images: bool = True
    ) -> None:
        """Delivered, or failed (the member was told, or nothing could be posted); the kept
        pictures of its outcome are dropped (`images` False: it kept none)."""
        ...

    async def get(self, event_key: str) -> Turn | None:
        """The turn of an event key, or None."""
        ...

    async def load(self, turn_id: str) -> Turn | None:
        """The turn by id, with its outcome, or None."""
        ...

    async def first_open_in_thread(self, thread_key: str) -> Turn | None:
        """The thread's oldest turn not finished yet (who started a conversation that has no
        answer, so no session, yet), or None."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete delivered and failed turns finished before `before`; how many went."""
        ...


class AuditLog(Protocol):
    """Append-only log of admin actions."""

    async def record(self, entry: AuditEntry) -> None:
        """Append one entry."""
        ...

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
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


class Posted(Protocol):
    """What an adapter has posted for a turn so far, kept in the ledger as it changes."""

    @property
    def value(self) -> str:
        """The adapter's own note ("" before anything was posted)."""
        ...

    async def save(self, value: str) -> None:
        """Keep `value`, so a delivery after a restart edits instead of posting again."""
        ...

    async def save_while_waiting(self, value: str) -> bool:
        """Keep `value` only while the turn has not started in any worker; False (nothing
        kept) once it has: what was just posted for the wait is then the adapter's to undo."""
        ...

    def save_soon(self, value: str) -> None:
        """`save`, written meanwhile rather than awaited: for the placeholder posted as a turn
        starts, so that Samsar is called without waiting for the write. The worker has it
        written before the turn's outcome (and any later `save` goes after it)."""
        ...


class Working(Protocol):
    """The progress a platform shows while Samsar works on a turn."""

    async def slow(self) -> None:
        """Samsar is slower than the call's timeout: say the answer will come when it does."""
        ...


class TurnChannel(Protocol):
    """One platform's side of a durable turn: inputs, progress, delivery.

    Any worker may call these for any turn of the platform, in this process or after a
    restart, so they work from the turn's stored `route` and `posted` alone.
    """

    async def prepare(self, turn: Turn, request: TurnRequest) -> Prepared:
        """The member and the attached images, fetched now; BotError when they cannot be."""
        ...

    async def waiting(
        self, turn: Turn, request: TurnRequest, posted: Posted, place: int | None
    ) -> None:
        """Show that the turn waits to start: `place` in the line of turns waiting for a free
        worker (1: next), or None: behind an earlier turn of its own thread. Called again when
        that changes; `working` then takes over what it showed."""
        ...

    def working(
        self, turn: Turn, request: TurnRequest, posted: Posted
    ) -> AbstractAsyncContextManager[Working]:
        """Show progress while the block runs (a placeholder, typing, a status line); the
        inputs are prepared and Samsar is called inside it."""
        ...

    async def deliver(
        self, turn: Turn, request: TurnRequest, outcome: Reply | BotError, posted: Posted
    ) -> None:
        """Post the answer or the error sentence; raise when it could not be posted (the
        worker tries again later; `Undeliverable` says it never will be)."""
        ...

    async def give_up(self, turn: Turn, request: TurnRequest, posted: Posted) -> None:
        """Deliveries failed for good: leave a short note where one can still be posted."""
        ...

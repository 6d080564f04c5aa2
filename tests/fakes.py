"""Fakes of core's own ports (no mocks): an in-memory store and a scripted Samsar."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from core import errors
from core.models import (
    AdminPrompt,
    AuditEntry,
    Balance,
    CheckoutLink,
    Completion,
    CompletionRequest,
    Credits,
    ExternalIdentity,
    GeneratedImage,
    ImageProblem,
    LoginLink,
    StoredUser,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnStatus,
)

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class MemoryUsers:
    """UserRepository in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredUser] = {}

    async def get(self, user_key: str) -> StoredUser | None:
        return self.rows.get(user_key)

    async def save(self, user: StoredUser) -> None:
        self.rows[user.user_key] = user


class MemorySessions:
    """SessionRepository in memory."""

    def __init__(self) -> None:
        self.rows: dict[ThreadRef, ThreadSession] = {}

    async def get(self, thread: ThreadRef) -> ThreadSession | None:
        return self.rows.get(thread)

    async def save(self, session: ThreadSession) -> None:
        self.rows.pop(session.thread, None)
        self.rows[session.thread] = session

    async def delete(self, thread: ThreadRef) -> bool:
        return self.rows.pop(thread, None) is not None

    async def latest_owned(
        self, platform: str, workspace_id: str, channel_id: str, owner_key: str
    ) -> ThreadSession | None:
        # Dicts keep insertion order and save() re-inserts: the last match is the latest used.
        matches = [
            s
            for t, s in self.rows.items()
            if (t.platform, t.workspace_id, t.channel_id) == (platform, workspace_id, channel_id)
            and s.owner_key == owner_key
        ]
        return matches[-1] if matches else None


class MemoryPrompts:
    """PromptRepository in memory."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], AdminPrompt] = {}

    async def get(self, platform: str, workspace_id: str, channel_id: str) -> AdminPrompt | None:
        return self.rows.get((platform, workspace_id, channel_id))

    async def set(self, prompt: AdminPrompt) -> None:
        self.rows[(prompt.platform, prompt.workspace_id, prompt.channel_id)] = prompt

    async def clear(self, platform: str, workspace_id: str, channel_id: str) -> bool:
        return self.rows.pop((platform, workspace_id, channel_id), None) is not None


class MemoryTurns:
    """TurnLedger in memory; refuses a second event key like the unique index does."""

    def __init__(self) -> None:
        self.rows: dict[str, Turn] = {}

    async def begin(self, turn: Turn) -> bool:
        if any(row.event_key == turn.event_key for row in self.rows.values()):
            return False
        self.rows[turn.turn_id] = turn
        return True

    async def finish(
        self,
        turn_id: str,
        status: TurnStatus,
        *,
        latency_ms: int | None = None,
        credits_charged: float | None = None,
        error: str | None = None,
    ) -> None:
        self.rows[turn_id] = dataclasses.replace(
            self.rows[turn_id],
            status=status,
            latency_ms=latency_ms,
            credits_charged=credits_charged,
            error=error,
        )

    async def get(self, event_key: str) -> Turn | None:
        return next((row for row in self.rows.values() if row.event_key == event_key), None)


class MemoryAudit:
    """AuditLog in memory."""

    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.rows.append(entry)

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        return list(reversed(self.rows))[:limit]


class NoLocks:
    """ThreadLocks for one process: core's own lock is enough."""

    @asynccontextmanager
    async def hold(self, thread_key: str) -> AsyncIterator[None]:
        yield


@dataclass
class MemoryStore:
    """Store in memory."""

    users: MemoryUsers = field(default_factory=MemoryUsers)
    sessions: MemorySessions = field(default_factory=MemorySessions)
    prompts: MemoryPrompts = field(default_factory=MemoryPrompts)
    turns: MemoryTurns = field(default_factory=MemoryTurns)
    audit: MemoryAudit = field(default_factory=MemoryAudit)
    locks: NoLocks = field(default_factory=NoLocks)


@dataclass
class Call:
    """One call the fake Samsar received."""

    route: str
    user: ExternalIdentity | None
    idempotency_key: str | None
    request: CompletionRequest | None = None


class FakeSamsar:
    """SamsarPort with per-user balances, owned sessions and scripted failures."""

    def __init__(self, *, start_credits: float = 100, cost: float = 1) -> None:
        self.calls: list[Call] = []
        self.balances: dict[str, float] = {}
        self.session_owner: dict[str, str] = {}
        self.fail_next: list[Exception] = []
        self.gate: asyncio.Event | None = None  # when set, completions wait for it
        self.image_problems: tuple[ImageProblem, ...] = ()  # pictures each completion lacks
        self.start_credits = start_credits
        self.cost = cost
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()

    async def wait_for_completions(self, count: int) -> None:
        """Wait until `count` completion calls have arrived (bounded by the caller's timeout)."""
        while self.count("completion") < count:
            self._arrived.clear()
            await self._arrived.wait()

    def _record(self, route: str, user: ExternalIdentity | None, key: str | None) -> None:
        self.calls.append(Call(route, user, key))
        if self.fail_next:
            raise self.fail_next.pop(0)

    def count(self, route: str) -> int:
        """How many calls reached `route`."""
        return sum(1 for call in self.calls if call.route == route)

    def _known(self, user: ExternalIdentity) -> str:
        if user.external_user_id not in self.balances:
            raise errors.NotFound("external user not found", status=404)
        return user.external_user_id

    async def bootstrap_user(self, user: ExternalIdentity, *, idempotency_key: str) -> Balance:
        self._record("session", user, idempotency_key)
        self.balances.setdefault(user.external_user_id, self.start_credits)
        return Balance(remaining=self.balances[user.external_user_id])

    async def create_assistant_session(
        self, user: ExternalIdentity, *, idempotency_key: str
    ) -> str:
        self._record("assistant_session", user, idempotency_key)
        session_id = f"sess-{next(self._ids)}"
        self.session_owner[session_id] = self._known(user)
        return session_id

    async def complete(
        self, user: ExternalIdentity, request: CompletionRequest, *, idempotency_key: str
    ) -> Completion:
        self.calls.append(Call("completion", user, idempotency_key, request))
        self._arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            raise self.fail_next.pop(0)
        owner = self._known(user)
        if request.session_id not in self.session_owner:
            raise errors.NotFound("session not found", status=404)
        if self.session_owner[request.session_id] != owner:
            raise errors.AuthenticationFailed("session of another user", status=403)
        cost = self.cost * (2 if request.force_image else 1)
        if self.balances[owner] < cost:
            raise errors.InsufficientCredits(
                "Insufficient credits", status=402, credits_remaining=self.balances[owner]
            )
        self.balances[owner] -= cost
        images = (GeneratedImage(PNG_1PX, "image/png", "png", "a revised prompt"),)
        return Completion(
            response_id=f"resp-{next(self._ids)}",
            text=f"echo: {request.text}",
            images=images if request.force_image else (),
            credits=Credits(charged=cost, remaining=self.balances[owner]),
            image_problems=self.image_problems,
        )

    async def set_user_prompt(
        self, user: ExternalIdentity, prompt: str | None, *, idempotency_key: str
    ) -> str | None:
        self._record("set_system_prompt", user, idempotency_key)
        return prompt

    async def credits(self, user: ExternalIdentity) -> Balance:
        self._record("credits", user, None)
        return Balance(remaining=self.balances[self._known(user)])

    async def recharge_link(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> CheckoutLink:
        self._record("recharge", user, idempotency_key)
        return CheckoutLink(url=f"https://checkout.invalid/{credits}", credits=credits)

    async def grant_credits(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> Balance:
        self._record("grant", user, idempotency_key)
        owner = self._known(user)
        self.balances[owner] += credits
        return Balance(remaining=self.balances[owner])

    async def login_link(
        self, user: ExternalIdentity, *, idempotency_key: str, redirect: str | None = None
    ) -> LoginLink:
        self._record("login", user, idempotency_key)
        return LoginLink(url="https://studio.invalid/login")

    async def set_account_prompt(self, prompt: str | None, *, idempotency_key: str) -> str | None:
        self._record("account_prompt", None, idempotency_key)
        return prompt

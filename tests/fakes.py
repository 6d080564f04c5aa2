"""Fakes of core's own ports (no mocks): an in-memory store and a scripted Samsar."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from core import errors
from core.errors import BotError
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
    Rate,
    Recorded,
    Reply,
    SamsarCall,
    StoredUser,
    Take,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnStatus,
    WaitingTurn,
)
from core.ports import Finished, FixCall

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

    async def advance(
        self,
        thread: ThreadRef,
        session_id: str,
        last_response_id: str | None,
        fingerprint: str | None,
    ) -> bool:
        session = self.rows.get(thread)
        if session is None or session.session_id != session_id:
            return False
        await self.save(
            replace(
                session,
                last_response_id=last_response_id or session.last_response_id,
                prompt_fingerprint=fingerprint,
            )
        )
        return True

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
        self.users: MemoryUsers | None = None  # where members' personas are kept

    async def get(self, platform: str, workspace_id: str, channel_id: str) -> AdminPrompt | None:
        return self.rows.get((platform, workspace_id, channel_id))

    async def in_force(
        self, platform: str, workspace_id: str, channel_id: str, member_key: str | None = None
    ) -> tuple[AdminPrompt | None, AdminPrompt | None, str | None]:
        channel = self.rows.get((platform, workspace_id, channel_id)) if channel_id else None
        stored = await self.users.get(member_key) if member_key and self.users else None
        persona = stored.persona if stored else None
        return self.rows.get((platform, workspace_id, "")), channel, persona

    async def set(self, prompt: AdminPrompt) -> None:
        self.rows[(prompt.platform, prompt.workspace_id, prompt.channel_id)] = prompt

    async def clear(self, platform: str, workspace_id: str, channel_id: str) -> bool:
        return self.rows.pop((platform, workspace_id, channel_id), None) is not None


class MemoryTurns:
    """TurnLedger in memory, with the SQL ledger's rules: a unique event key, leases that
    only their owner writes through, one open turn per thread at a time, in order."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.rows: dict[str, Turn] = {}
        self.now = now
        self.sessions: MemorySessions | None = None  # where a reply's advance lands
        self.prompts: MemoryPrompts | None = None  # what a claim's `fix` reads
        self.buckets: dict[str, tuple[float, float]] = {}  # member → (tokens, at)
        self.feedback: dict[str, str] = {}  # turn → "up" / "down"
        self.writes: list[str] = []  # "posted" and "complete", in the order they landed
        self.posted_gate: asyncio.Event | None = None  # when set, save_posted waits for it

    async def record(self, turn: Turn) -> bool:
        if any(row.event_key == turn.event_key for row in self.rows.values()):
            return False
        status = TurnStatus.COMPLETED if turn.error is not None else turn.status
        self.rows[turn.turn_id] = replace(turn, status=status, created_at=self.now())
        return True

    async def record_in_thread(
        self,
        turn: Turn,
        thread: ThreadRef,
        *,
        rate: Rate | None = None,
        fix: FixCall | None = None,
        take: Take | None = None,
    ) -> Recorded:
        session = await self.sessions.get(thread) if self.sessions is not None else None
        owner: tuple[str, str | None] | None = None
        if session is not None:
            owner = (session.owner_key, session.owner_display)
        elif (first := await self.first_open_in_thread(turn.thread_key)) is not None:
            owner = (first.user_key, first.request.user.label if first.request else None)
        if owner is not None and owner[0] != turn.user_key:
            return Recorded(written=False, owner=owner)
        if rate is not None:
            if await self.get(turn.event_key) is not None:
                return Recorded(written=False)
            if (wait := self._take(turn.user_key, rate)) > 0:
                return Recorded(written=False, wait=wait)
        if fix is not None and session is not None and turn.call is None:
            turn = await self._fixed_at_record(turn, session, fix)
        if not await self.record(turn):
            return Recorded(written=False)
        return Recorded(written=True, taken=self._taken(turn.turn_id, take))

    def _taken(self, turn_id: str, take: Take | None) -> Turn | None:
        """Leased to its recorder when no other turn of its thread is open."""
        turn = self.rows[turn_id]
        if take is None or turn.status is not TurnStatus.RECEIVED:
            return None
        others = [t for t in self.rows.values() if t.thread_key == turn.thread_key and t != turn]
        if any(other.status.open for other in others):
            return None
        taken = replace(
            turn,
            status=TurnStatus.RUNNING,
            lease_owner=take.owner,
            lease_expires_at=self.now() + take.lease,
            runs=1,
        )
        self.rows[turn_id] = taken
        return taken

    async def _fixed_at_record(self, turn: Turn, session: ThreadSession, fix: FixCall) -> Turn:
        busy = (TurnStatus.RECEIVED, TurnStatus.RUNNING)
        if self.prompts is None or turn.request is None or turn.status is not TurnStatus.RECEIVED:
            return turn
        if any(t.thread_key == turn.thread_key and t.status in busy for t in self.rows.values()):
            return turn
        thread = turn.request.thread
        in_force = await self.prompts.in_force(
            thread.platform, thread.workspace_id, thread.channel_id, turn.user_key
        )
        return replace(turn, call=fix(turn, session, in_force))

    def _take(self, user_key: str, rate: Rate) -> float:
        """A token bucket per member on the ledger's clock."""
        now = self.now().timestamp()
        tokens, since = self.buckets.get(user_key, (rate.burst, now))
        level = min(rate.burst, tokens + (now - since) * rate.per_second)
        if level < 1:
            return (1 - level) / rate.per_second
        self.buckets[user_key] = (level - 1, now)
        return 0.0

    def _runnable(self, turn: Turn, platforms: Collection[str], now: datetime) -> bool:
        if not turn.status.open or turn.platform not in platforms:
            return False
        if turn.lease_expires_at is not None and turn.lease_expires_at >= now:
            return False
        if turn.next_attempt_at is not None and turn.next_attempt_at > now:
            return False
        order = list(self.rows)
        return not any(
            other.thread_key == turn.thread_key
            and other.turn_id != turn.turn_id
            and other.status.open
            and (
                order.index(other.turn_id) < order.index(turn.turn_id)
                or (other.lease_expires_at is not None and other.lease_expires_at > now)
            )
            for other in self.rows.values()
        )

    async def claim(self, owner: str, platforms: Collection[str], lease: timedelta) -> Turn | None:
        now = self.now()
        for turn in list(self.rows.values()):
            if self._runnable(turn, platforms, now):
                runs = turn.status is not TurnStatus.COMPLETED
                claimed = replace(
                    turn,
                    status=TurnStatus.RUNNING if runs else turn.status,
                    lease_owner=owner,
                    lease_expires_at=now + lease,
                    runs=turn.runs + (1 if runs else 0),
                )
                self.rows[turn.turn_id] = claimed
                return claimed
        return None

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
        for item in finished:
            await self.finish(item.turn_id, owner, item.status, images=item.images)
        claimed: list[Turn] = []
        while len(claimed) < limit and (turn := await self.claim(owner, platforms, lease)):
            if fix is not None:
                turn = await self._fixed(turn, owner, fix)
            claimed.append(turn)
        return claimed

    async def _fixed(self, turn: Turn, owner: str, fix: FixCall) -> Turn:
        request = turn.request
        if turn.status is not TurnStatus.RUNNING or turn.call is not None or request is None:
            return turn
        session = await self.sessions.get(request.thread) if self.sessions is not None else None
        if session is None or self.prompts is None:
            return turn
        thread = request.thread
        in_force = await self.prompts.in_force(
            thread.platform, thread.workspace_id, thread.channel_id, turn.user_key
        )
        call = fix(turn, session, in_force)
        if call is None or not await self.save_call(turn.turn_id, owner, call):
            return turn
        return self.rows[turn.turn_id]

    def _owned(self, turn_id: str, owner: str) -> Turn | None:
        turn = self.rows.get(turn_id)
        if turn is None or turn.lease_owner != owner or not turn.status.open:
            return None
        return turn

    async def renew(self, turn_id: str, owner: str, lease: timedelta) -> bool:
        turn = self._owned(turn_id, owner)
        if turn is not None:
            self.rows[turn_id] = replace(turn, lease_expires_at=self.now() + lease)
        return turn is not None

    async def save_call(self, turn_id: str, owner: str, call: SamsarCall) -> bool:
        turn = self._owned(turn_id, owner)
        if turn is not None:
            self.rows[turn_id] = replace(turn, call=call)
        return turn is not None

    async def save_feedback(self, turn_id: str, user_key: str, value: str) -> bool:
        turn = self.rows.get(turn_id)
        if turn is None or turn.user_key != user_key:
            return False
        self.feedback[turn_id] = value
        return True

    async def save_posted(self, turn_id: str, posted: str) -> None:
        if self.posted_gate is not None:
            await self.posted_gate.wait()
        self.rows[turn_id] = replace(self.rows[turn_id], posted=posted)
        self.writes.append("posted")

    async def save_posted_while_waiting(self, turn_id: str, posted: str) -> bool:
        turn = self.rows[turn_id]
        if turn.status is not TurnStatus.RECEIVED or turn.lease_owner is not None:
            return False
        self.rows[turn_id] = replace(turn, posted=posted)
        return True

    async def waiting(self, platforms: Collection[str], limit: int) -> list[WaitingTurn]:
        order = list(self.rows)

        def earlier(turn: Turn) -> list[Turn]:
            return [
                other
                for other in self.rows.values()
                if other.thread_key == turn.thread_key
                and other.status.open
                and order.index(other.turn_id) < order.index(turn.turn_id)
            ]

        found = [
            WaitingTurn(
                turn,
                behind=bool(earlier(turn)),
                in_order=all(other.posted for other in earlier(turn)),
            )
            for turn in self.rows.values()
            if turn.status is TurnStatus.RECEIVED
            and turn.lease_owner is None
            and turn.platform in platforms
        ]
        return found[:limit]

    async def complete(
        self, turn_id: str, owner: str, outcome: Reply | BotError, *, latency_ms: int | None
    ) -> bool:
        turn = self._owned(turn_id, owner)
        if turn is None or turn.status is TurnStatus.COMPLETED:
            return False
        reply = outcome if isinstance(outcome, Reply) else None
        self.writes.append("complete")
        self.rows[turn_id] = replace(
            turn,
            status=TurnStatus.COMPLETED,
            reply=reply,
            error=None if reply else outcome,  # type: ignore[arg-type]
            latency_ms=latency_ms,
            credits_charged=reply.credits.charged if reply else None,
            completed_at=self.now(),
        )
        if reply is not None and reply.advance is not None and self.sessions is not None:
            moved = reply.advance
            await self.sessions.advance(
                moved.thread, moved.session_id, moved.response_id, moved.prompt_fingerprint
            )
        return True

    async def postpone(
        self, turn_id: str, owner: str, *, retry_at: datetime, delivery_attempts: int
    ) -> None:
        turn = self._owned(turn_id, owner)
        if turn is not None:
            self.rows[turn_id] = replace(
                turn,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=retry_at,
                delivery_attempts=delivery_attempts,
            )

    async def release(self, turn_id: str, owner: str) -> None:
        turn = self._owned(turn_id, owner)
        if turn is not None:
            self.rows[turn_id] = replace(turn, lease_owner=None, lease_expires_at=None)

    async def finish(
        self, turn_id: str, owner: str, status: TurnStatus, *, images: bool = True
    ) -> None:
        turn = self.rows[turn_id]
        if turn.lease_owner == owner:
            self.rows[turn_id] = replace(
                turn, status=status, lease_owner=None, lease_expires_at=None, finished_at=self.now()
            )

    async def get(self, event_key: str) -> Turn | None:
        return next((row for row in self.rows.values() if row.event_key == event_key), None)

    async def load(self, turn_id: str) -> Turn | None:
        return self.rows.get(turn_id)

    async def first_open_in_thread(self, thread_key: str) -> Turn | None:
        return next(
            (t for t in self.rows.values() if t.thread_key == thread_key and t.status.open), None
        )

    async def prune(self, before: datetime) -> int:
        old = [
            t.turn_id
            for t in self.rows.values()
            if not t.status.open and t.finished_at is not None and t.finished_at < before
        ]
        for turn_id in old:
            del self.rows[turn_id]
        return len(old)


class MemoryAudit:
    """AuditLog in memory."""

    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.rows.append(entry)

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        return list(reversed(self.rows))[:limit]


@dataclass
class MemoryStore:
    """Store in memory."""

    users: MemoryUsers = field(default_factory=MemoryUsers)
    sessions: MemorySessions = field(default_factory=MemorySessions)
    prompts: MemoryPrompts = field(default_factory=MemoryPrompts)
    turns: MemoryTurns = field(default_factory=MemoryTurns)
    audit: MemoryAudit = field(default_factory=MemoryAudit)

    def __post_init__(self) -> None:
        self.turns.sessions = self.sessions
        self.turns.prompts = self.prompts
        self.prompts.users = self.users


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
        self.fail_next: list[Exception] = []  # the next calls of any route fail
        self.fail_completions: list[Exception] = []  # the next completions fail
        self.answered: dict[str, Completion] = {}
        self.gate: asyncio.Event | None = None  # when set, completions wait for it
        self.image_problems: tuple[ImageProblem, ...] = ()  # pictures each completion lacks
        self.start_credits = start_credits
        self.cost = cost
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()
        self.personas: dict[str, str | None] = {}  # external user id → their system prompt

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
        if self.fail_completions:
            raise self.fail_completions.pop(0)
        if idempotency_key in self.answered:  # Samsar replays a key it answered
            return self.answered[idempotency_key]
        completion = await self._complete(user, request)
        self.answered[idempotency_key] = completion
        return completion

    async def _complete(self, user: ExternalIdentity, request: CompletionRequest) -> Completion:
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
        self.personas[self._known(user)] = prompt
        return prompt

    async def credits(self, user: ExternalIdentity) -> Balance:
        self._record("credits", user, None)
        return Balance(remaining=self.balances[self._known(user)])

    async def recharge_link(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> CheckoutLink:
        self._record("recharge", user, idempotency_key)
        self._known(user)
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
        self._known(user)
        return LoginLink(url="https://studio.invalid/login")

    async def set_account_prompt(self, prompt: str | None, *, idempotency_key: str) -> str | None:
        self._record("account_prompt", None, idempotency_key)
        return prompt

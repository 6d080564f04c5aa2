"""In-memory state of the sandbox Samsar service: users, sessions, idempotency, calls, faults."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

UserKey = tuple[str, str]
"""(provider, external_user_id): how the sandbox keys an external user."""

MiB = 1024 * 1024
MAX_IDEMPOTENCY_ENTRIES = 10_000


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one sandbox instance."""

    api_key: str = "sandbox-key"
    start_credits: int = 100
    text_cost: int = 1
    image_cost: int = 5
    max_body_bytes: int = 20 * MiB


class ApiError(Exception):
    """An error answer: HTTP `status` with a JSON `{message}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    """The current UTC time as an ISO 8601 string."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    """A random identifier such as `resp_3f2a…`."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class ExternalUser:
    """An external user of the platform account, with their own credit balance."""

    provider: str
    external_user_id: str
    credits: int
    profile: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    id: str = field(default_factory=lambda: new_id("extuser"))
    external_api_key: str = field(default_factory=lambda: new_id("sk_ext"))
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    total_requests: int = 0
    total_credits_used: int = 0
    total_credits_purchased: int = 0
    last_request_at: str | None = None

    @property
    def key(self) -> UserKey:
        """The (provider, external_user_id) key."""
        return (self.provider, self.external_user_id)

    def summary(self) -> dict[str, Any]:
        """The `ExternalUserSummary` JSON the real service returns."""
        profile = self.profile
        return {
            "id": self.id,
            "provider": self.provider,
            "external_user_id": self.external_user_id,
            "unique_key": profile.get("unique_key"),
            "external_app_id": profile.get("external_app_id"),
            "external_company_id": profile.get("external_company_id"),
            "email": profile.get("email"),
            "username": profile.get("username"),
            "display_name": profile.get("display_name"),
            "avatar_url": profile.get("avatar_url"),
            "user_type": profile.get("user_type"),
            "generation_credits": self.credits,
            "has_external_api_key": True,
            "total_requests": self.total_requests,
            "total_credits_used": self.total_credits_used,
            "total_credits_purchased": self.total_credits_purchased,
            "last_request_at": self.last_request_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One message a session received (or answered): role, joined text, image count."""

    role: str
    text: str
    images: int = 0
    response_id: str | None = None


@dataclass
class Session:
    """An assistant session owned by one external user."""

    session_id: str
    owner: UserKey
    name: str | None = None
    created_at: str = field(default_factory=now_iso)
    history: list[HistoryEntry] = field(default_factory=list)
    response_ids: list[str] = field(default_factory=list)
    turns: int = 0
    last_image: bytes | None = None
    images_generated: int = 0
    # Each picture made: (size, quality, action, edited) as the tool asked and it was done.
    pictures: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def roles(self) -> list[str]:
        """The roles of the history entries, in order."""
        return [entry.role for entry in self.history]


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call the sandbox answered; `status` 0 means the connection was dropped."""

    route: str
    method: str
    external_user: UserKey | None
    idempotency_key: str | None
    status: int
    credits_charged: int
    replayed: bool = False
    fault: bool = False
    request_id: str = ""


@dataclass
class Fault:
    """A queued misbehaviour for calls whose route ends with `route_suffix`."""

    route_suffix: str
    status: int | None = None
    body: dict[str, Any] | str | None = None
    times: int = 1
    delay: float = 0.0
    malformed: bool = False
    drop: bool = False


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for idempotent replay."""

    status: int
    body: bytes
    headers: dict[str, str]
    external_user: UserKey | None


@dataclass
class IdempotencyEntry:
    """An Idempotency-Key in flight or answered: the body fingerprint and the stored answer."""

    fingerprint: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    response: StoredResponse | None = None


@dataclass
class Checkout:
    """A pending (or paid) credit recharge checkout."""

    checkout_id: str
    user: UserKey
    credits: int
    paid: bool = False


class SandboxState:
    """Everything the sandbox remembers; tests read and steer it directly."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.users: dict[UserKey, ExternalUser] = {}
        self.sessions: dict[str, Session] = {}
        self.account_prompt: str | None = None
        self.idempotency: dict[tuple[str, str], IdempotencyEntry] = {}
        self.calls: list[CallRecord] = []
        self.faults: list[Fault] = []
        self.checkouts: dict[str, Checkout] = {}
        self._call_event = asyncio.Event()

    # external users ------------------------------------------------------------------
    def user(self, provider: str, external_user_id: str) -> ExternalUser | None:
        """The external user, or None when never bootstrapped."""
        return self.users.get((provider, external_user_id))

    def upsert_user(self, key: UserKey, profile: dict[str, Any]) -> ExternalUser:
        """Create the user with `start_credits`, or refresh their profile fields."""
        user = self.users.get(key)
        if user is None:
            user = ExternalUser(key[0], key[1], self.config.start_credits, dict(profile))
            self.users[key] = user
            logger.info("sandbox: new external user %s/%s", *key)
        else:
            user.profile.update(profile)
            user.updated_at = now_iso()
        return user

    def balance(self, provider: str, external_user_id: str) -> int:
        """The user's credit balance (KeyError when unknown)."""
        return self.users[(provider, external_user_id)].credits

    def set_credits(self, provider: str, external_user_id: str, credits: int) -> None:
        """Force a user's balance (for tests of low or exhausted credits)."""
        self.users[(provider, external_user_id)].credits = credits

    def charge(self, user: ExternalUser, cost: int) -> None:
        """Take `cost` credits, or raise 402 and take nothing."""
        if user.credits < cost:
            raise ApiError(402, f"Insufficient credits: {user.credits} remaining, {cost} required")
        user.credits -= cost
        user.total_credits_used += cost
        user.total_requests += 1
        user.last_request_at = now_iso()

    # sessions --------------------------------------------------------------------------
    def new_session(self, owner: UserKey, name: str | None = None) -> Session:
        """Create an empty assistant session owned by `owner`."""
        session = Session(new_id("sess"), owner, name)
        self.sessions[session.session_id] = session
        return session

    def session(self, session_id: str) -> Session | None:
        """The session with that id, if any."""
        return self.sessions.get(session_id)

    def sessions_of(self, provider: str, external_user_id: str) -> list[Session]:
        """The sessions owned by one external user, oldest first."""
        key = (provider, external_user_id)
        return [s for s in self.sessions.values() if s.owner == key]

    def effective_prompt(self, user: ExternalUser) -> str | None:
        """The user's own system prompt, else the account prompt."""
        return user.system_prompt or self.account_prompt

    # idempotency -----------------------------------------------------------------------
    def keep_response(self, slot: tuple[str, str], entry: IdempotencyEntry) -> None:
        """Store an answered key for replay, forgetting the oldest answered ones past the cap."""
        self.idempotency[slot] = entry
        if len(self.idempotency) > MAX_IDEMPOTENCY_ENTRIES:
            answered = [k for k, e in self.idempotency.items() if e.response is not None]
            for old in answered[: len(self.idempotency) - MAX_IDEMPOTENCY_ENTRIES]:
                del self.idempotency[old]

    # checkouts -------------------------------------------------------------------------
    def new_checkout(self, user: UserKey, credits: int) -> Checkout:
        """Record a pending recharge checkout (credits not added yet)."""
        checkout = Checkout(new_id("cs_sandbox"), user, credits)
        self.checkouts[checkout.checkout_id] = checkout
        return checkout

    def complete_checkout(self, checkout_id: str) -> int:
        """Pay a checkout once: add its credits; returns the user's new balance."""
        checkout = self.checkouts[checkout_id]
        user = self.users[checkout.user]
        if not checkout.paid:
            checkout.paid = True
            user.credits += checkout.credits
            user.total_credits_purchased += checkout.credits
        return user.credits

    # call log --------------------------------------------------------------------------
    def record(self, call: CallRecord) -> None:
        """Append a call to the log and wake up waiters."""
        self.calls.append(call)
        self._call_event.set()
        self._call_event = asyncio.Event()

    def calls_to(self, route_suffix: str) -> list[CallRecord]:
        """The logged calls whose route ends with `route_suffix`."""
        return [c for c in self.calls if c.route.endswith(route_suffix)]

    def charged_total(self, provider: str, external_user_id: str) -> int:
        """Credits charged to a user over all logged calls."""
        key = (provider, external_user_id)
        return sum(c.credits_charged for c in self.calls if c.external_user == key)

    async def wait_for_calls(
        self, route_suffix: str, count: int = 1, within: float = 5.0
    ) -> list[CallRecord]:
        """Wait until at least `count` calls to the route are logged; TimeoutError otherwise."""
        async with asyncio.timeout(within):
            while len(found := self.calls_to(route_suffix)) < count:
                await self._call_event.wait()
        return found

    # faults ----------------------------------------------------------------------------
    def inject(
        self,
        route_suffix: str,
        *,
        status: int | None = None,
        body: dict[str, Any] | str | None = None,
        times: int = 1,
        delay: float = 0.0,
        malformed: bool = False,
        drop: bool = False,
    ) -> Fault:
        """Queue a fault for the next `times` calls whose route ends with `route_suffix`."""
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(route_suffix.strip("/"), status, body, times, delay, malformed, drop)
        self.faults.append(fault)
        return fault

    def take_fault(self, route: str) -> Fault | None:
        """Consume one use of the first queued fault matching `route`."""
        for fault in self.faults:
            if route.endswith(fault.route_suffix):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self.faults.clear()

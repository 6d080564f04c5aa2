"""The small value types that flow between adapters, core, the Samsar client and storage."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.errors import BotError

# --- who and where -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatUser:
    """A member as a platform sees them; `is_admin` is the adapter's verdict."""

    platform: str  # "discord" | "slack" | "console"
    user_id: str
    workspace_id: str | None = None  # Discord guild, Slack team, console workspace
    enterprise_id: str | None = None  # Slack Enterprise Grid org, when present
    username: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
    is_admin: bool = False

    @property
    def key(self) -> str:
        """The stable identity of this person in our store (DESIGN decision 1)."""
        if self.platform == "slack":
            space = self.enterprise_id or self.workspace_id or "-"
            return f"slack:{space}:{self.user_id}"
        return f"{self.platform}:{self.user_id}"

    @property
    def label(self) -> str:
        """A human name for messages."""
        return self.display_name or self.username or self.user_id


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """Where a conversation lives: one Samsar session per thread (DESIGN decision 2)."""

    platform: str
    workspace_id: str  # "" when the platform has none (Discord DMs)
    channel_id: str
    thread_id: str  # Discord thread/DM channel id, Slack thread_ts, console session name

    @property
    def key(self) -> str:
        """A stable string for locks and logs."""
        return f"{self.platform}/{self.workspace_id}/{self.channel_id}/{self.thread_id}"


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """The Samsar `external_user` a chat user maps to."""

    provider: str
    external_user_id: str
    external_company_id: str | None = None
    username: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
    metadata: Mapping[str, str] | None = None


# --- what a member sends -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image the member attached, already fetched by the adapter."""

    data: bytes
    mime: str
    filename: str = "image"


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """The `image_generation` tool settings for one call."""

    size: str = "1024x1024"
    quality: str = "auto"
    format: str = "png"
    action: str | None = None  # "edit": change the conversation's last picture (the tool's)


@dataclass(frozen=True, slots=True)
class ImageChoice:
    """What a member chose for one image; None leaves the operator's default."""

    size: str | None = None
    quality: str | None = None
    format: str | None = None
    action: str | None = None


class Redo(enum.StrEnum):
    """A click on a picture or a failure: the member's earlier turn again, changed so."""

    REGENERATE = "regen"  # the same prompt and options, a fresh picture
    HD = "hd"  # the same, at high quality
    SIZE = "size"  # the same, at another size
    EDIT = "edit"  # an instruction that changes the picture (the tool's edit action)
    RETRY = "retry"  # a turn that failed on Samsar's side, asked again with the same key


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One member action that may reach Samsar; `event_key` is stable across redeliveries."""

    event_key: str
    user: ChatUser
    thread: ThreadRef
    text: str
    images: tuple[InputImage, ...] = ()


# --- what Samsar answers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credits:
    """Credit figures from `x-credits-charged` / `x-credits-remaining` (None when absent)."""

    charged: float | None = None
    remaining: float | None = None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """A decoded `image_generation_call` result."""

    data: bytes
    mime: str  # detected from magic bytes
    extension: str  # "png" | "jpeg" | "webp" | "gif"
    revised_prompt: str | None = None


class ImageProblem(enum.StrEnum):
    """Why a picture the assistant set out to make is not in the answer."""

    NOT_MADE = "not_made"  # an image_generation_call without a result (failed, cut short)
    UNREADABLE = "unreadable"  # a result that does not decode as a picture


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What core asks of one assistant completion."""

    session_id: str
    text: str
    images: tuple[InputImage, ...] = ()
    developer_prompt: str | None = None  # sent as a `developer` message before the user's
    image_tool: ImageOptions | None = None  # None: no tools at all
    force_image: bool = False  # tool_choice {type: image_generation} instead of "auto"
    max_output_tokens: int | None = None
    previous_response_id: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """The assistant's answer: text, decoded images, response id, credits, missing pictures."""

    response_id: str | None
    text: str
    images: tuple[GeneratedImage, ...]
    credits: Credits
    image_problems: tuple[ImageProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class Balance:
    """A credit balance read from Samsar."""

    remaining: float | None
    credits: Credits = field(default_factory=Credits)


@dataclass(frozen=True, slots=True)
class CheckoutLink:
    """A Stripe checkout link for buying credits."""

    url: str
    credits: int
    amount_usd: float | None = None


@dataclass(frozen=True, slots=True)
class LoginLink:
    """A short-lived Samsar Studio login link."""

    url: str
    expires_at: str | None = None
    expires_in_seconds: int | None = None


# --- what core returns to adapters ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyImage:
    """An image ready to attach: bytes, mime type, a file name and the revised prompt."""

    data: bytes
    mime: str
    filename: str
    revised_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    """A member's allowance of turns: refilled at `per_second`, up to `burst` at once."""

    per_second: float
    burst: float


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording a member's turn came to: `written`, or not — a redelivery of an event
    recorded before, a thread that is another member's conversation (`owner`: their user key
    and display name), or a member over their rate (`wait`: seconds until the next turn).
    `taken`: the turn as written, when it was leased to its recorder at once (see `Take`)."""

    written: bool
    owner: tuple[str, str | None] | None = None
    wait: float = 0.0
    taken: Turn | None = None


@dataclass(frozen=True, slots=True)
class Take:
    """A recorder with room to run a turn now: the turn it records is leased to `owner` for
    `lease` as it is written, when no turn of its thread is open (no claim to wait for)."""

    owner: str
    lease: timedelta


@dataclass(frozen=True, slots=True)
class WaitingTurn:
    """A turn not started yet: whether it is `behind` an earlier open turn of its own thread,
    and whether every such earlier turn already shows something (`in_order`: a note for this
    one then comes after theirs in the thread)."""

    turn: Turn
    behind: bool
    in_order: bool = True


@dataclass(frozen=True, slots=True)
class SessionAdvance:
    """Where a completion moves its thread's session: the response to continue from and the
    admin prompt now sent. Stored with the turn's outcome, in the same write."""

    thread: ThreadRef
    session_id: str
    response_id: str | None
    prompt_fingerprint: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer an adapter renders into the thread."""

    text: str
    images: tuple[ReplyImage, ...] = ()
    credits: Credits = field(default_factory=Credits)
    session_id: str | None = None
    turn_id: str | None = None
    new_session: bool = False
    image_problems: tuple[ImageProblem, ...] = ()  # pictures that could not be delivered
    advance: SessionAdvance | None = field(default=None, compare=False, repr=False)


# --- stored state (repositories speak these, never table rows) ----------------------


@dataclass(frozen=True, slots=True)
class StoredUser:
    """The mapping chat user → Samsar external user, and whether it was bootstrapped."""

    user_key: str
    platform: str
    provider: str
    external_user_id: str
    workspace_id: str | None = None
    display_name: str | None = None
    bootstrapped_at: datetime | None = None
    persona: str | None = None  # the member's own system prompt, as last set through the bot


@dataclass(frozen=True, slots=True)
class ThreadSession:
    """One thread's Samsar session, its owner and what was last sent to it."""

    thread: ThreadRef
    session_id: str
    owner_key: str
    owner_display: str | None = None
    last_response_id: str | None = None
    prompt_fingerprint: str | None = None  # of the admin prompt last sent; None: none sent
    created_at: datetime | None = None


class PromptScope(enum.StrEnum):
    """Where an admin prompt applies."""

    WORKSPACE = "workspace"
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class AdminPrompt:
    """An admin prompt for a workspace (channel_id "") or one channel."""

    platform: str
    workspace_id: str
    channel_id: str  # "" for workspace scope
    text: str
    updated_by: str
    updated_at: datetime | None = None

    @property
    def scope(self) -> PromptScope:
        """Workspace when no channel is set."""
        return PromptScope.CHANNEL if self.channel_id else PromptScope.WORKSPACE


class TurnStatus(enum.StrEnum):
    """The life of one turn in the ledger (DESIGN, "Durable turns").

    received → running (leased by one worker) → completed (its outcome stored) → delivered,
    or failed (the member was told why, or nothing could be posted for good).
    """

    RECEIVED = "received"
    RUNNING = "running"
    COMPLETED = "completed"
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def open(self) -> bool:
        """Not finished yet: a worker still has something to do for it."""
        return self in (TurnStatus.RECEIVED, TurnStatus.RUNNING, TurnStatus.COMPLETED)


class TurnKind(enum.StrEnum):
    """What a turn asks of the assistant."""

    ASK = "ask"
    IMAGINE = "imagine"


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What the member asked, kept with the turn so that any worker can run it again.

    `attachments` is the adapter's own note of the files to fetch (core never reads it);
    the bytes are fetched when the turn runs, not kept in the database.
    """

    user: ChatUser
    thread: ThreadRef
    text: str
    kind: TurnKind = TurnKind.ASK
    image: ImageOptions | None = None  # None: no image tool
    attachments: str = ""

    @property
    def force_image(self) -> bool:
        """An imagine turn forces the image tool."""
        return self.kind is TurnKind.IMAGINE


@dataclass(frozen=True, slots=True)
class Prepared:
    """A turn's inputs as the platform gives them when it runs: the member as they are now
    (names, admin flag) and the attached images, fetched."""

    user: ChatUser
    images: tuple[InputImage, ...] = ()


@dataclass(frozen=True, slots=True)
class SamsarCall:
    """The completion body fixed before the first try; every retry and resume sends it again,
    with the same Idempotency-Key, so Samsar replays instead of charging twice."""

    session_id: str
    new_session: bool
    developer_prompt: str | None
    prompt_fingerprint: str | None
    attempt: int = 0  # > 0 after Samsar forgot the user or session: new keys, new session
    of_turn: str | None = None  # a retry: the failed turn whose call (and key) this is

    def idempotency_key(self, turn_id: str) -> str:
        """The completion's key: the turn (the failed one, for a retry), and the attempt after
        a lost session."""
        owner = self.of_turn or turn_id
        return f"turn-{owner}-{self.attempt}" if self.attempt else f"turn-{owner}"


@dataclass(frozen=True, slots=True)
class Turn:
    """A ledger row: one member action, billed at most once (`turn_id` keys every Samsar call).

    `route` and `posted` belong to the adapter: where to deliver, and what it posted so far
    (so a second delivery edits instead of duplicating). `reply` or `error` is the outcome
    once the turn completed; the error is what the member is (or was) told.
    """

    turn_id: str
    event_key: str
    platform: str
    thread_key: str
    user_key: str
    kind: str  # "ask" | "imagine"
    status: TurnStatus = TurnStatus.RECEIVED
    request: TurnRequest | None = None
    route: str = ""
    posted: str = ""
    call: SamsarCall | None = None
    reply: Reply | None = None
    error: BotError | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    runs: int = 0  # how often a worker took it to run: more than one means it was resumed
    delivery_attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    finished_at: datetime | None = None
    latency_ms: int | None = None
    credits_charged: float | None = None

    @property
    def outcome(self) -> Reply | BotError | None:
        """The stored answer or error, once completed."""
        return self.error if self.error is not None else self.reply


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action, for the audit log."""

    actor_key: str
    action: str  # e.g. "prompt.set", "prompt.clear", "account_prompt.set"
    platform: str
    workspace_id: str
    channel_id: str
    detail: str
    created_at: datetime | None = None

"""What a Discord turn keeps in the ledger: where to answer (`Route`), what was posted (`Sent`),
and the attachments to fetch. JSON, so any process can deliver after a restart."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

# Discord keeps an interaction token for 15 minutes; stop using it a little before.
TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 30.0


@dataclass(frozen=True, slots=True)
class InteractionToken:
    """The token of a deferred interaction: its original response and followups."""

    application_id: int
    token: str
    expires_at: float  # epoch seconds

    @classmethod
    def fresh(cls, application_id: int, token: str, created_at: float) -> InteractionToken:
        """A token Discord issued at `created_at` (epoch seconds)."""
        return cls(application_id, token, created_at + TOKEN_LIFETIME)

    def alive(self) -> bool:
        """Still usable now."""
        return time.time() < self.expires_at - TOKEN_MARGIN

    def __repr__(self) -> str:  # the token is a credential for this interaction
        return f"InteractionToken(application_id={self.application_id}, token=<hidden>)"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a turn's answer goes: the interaction while its token lives, else the channel
    (replying to the member's message, or mentioning the member)."""

    channel_id: int
    guild_id: int | None
    user_id: int
    upload_limit: int
    reply_to: int | None = None
    interaction: InteractionToken | None = None
    opens_thread: bool = False  # open a thread from the answer (a conversation's start)
    title: str = ""  # the thread's name
    with_text: bool = True  # False for /imagine: the pictures (and captions) are the answer

    def dump(self) -> str:
        """As JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, raw: str) -> Route:
        """From JSON."""
        data = json.loads(raw)
        token = data.pop("interaction")
        return cls(**data, interaction=InteractionToken(**token) if token else None)


@dataclass(slots=True)
class Sent:
    """What was posted for a turn so far: a second delivery goes on from there."""

    count: int = 0  # messages of the answer already posted
    head: int | None = None  # the first message's id
    answered: bool = False  # the interaction's original response holds the answer
    late: bool = False  # the "took longer than Discord keeps a command open" line is posted
    thread_id: int | None = None  # the thread opened from the answer
    slow: bool = False  # the member was told Samsar is slow
    waiting: bool = False  # the command's response shows its place in line
    messages: list[int] = field(default_factory=list)

    def dump(self) -> str:
        """As JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, raw: str) -> Sent:
        """From JSON ("" is nothing posted yet)."""
        return cls(**json.loads(raw)) if raw else cls()


@dataclass(frozen=True, slots=True)
class Attachment:
    """An image a member attached, fetched from Discord's CDN when the turn runs."""

    url: str
    filename: str
    mime: str
    size: int


def dump_attachments(items: list[Attachment]) -> str:
    """As JSON."""
    return json.dumps([asdict(item) for item in items])


def load_attachments(raw: str) -> list[Attachment]:
    """From JSON ("" is none)."""
    return [Attachment(**item) for item in json.loads(raw)] if raw else []

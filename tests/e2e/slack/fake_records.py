"""What the fake Slack records, and the fixed identities of its workspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0FAKE"
CLIENT_ID = "1111.2222"  # the app's OAuth client (distribution)
CLIENT_SECRET = "fake-client-secret"


@dataclass
class FakeWorkspace:
    """A workspace (or a Grid org, installed org-wide) and its bot in it."""

    team_id: str | None
    name: str
    enterprise_id: str | None = None
    org_install: bool = False
    bot_user: str = BOT_USER
    bot_id: str = BOT_ID


@dataclass
class ApiCall:
    """One Web API request as received, and what the fake answered (status 0: it hung up)."""

    method: str
    params: dict[str, Any]
    token: str | None
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether Slack would have said ok."""
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class Message:
    """A message the bot posted; `versions` holds every text it had, oldest first."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]]
    versions: list[str] = field(default_factory=list)
    deleted: bool = False
    metadata: dict[str, Any] | None = None  # as posted (an event type and its payload)

    def section_text(self) -> str:
        """The mrkdwn of its section blocks (or its text when it has none)."""
        parts = [b["text"]["text"] for b in self.blocks if b.get("type") == "section"]
        return "\n".join(parts) if parts else self.text

    def context_text(self) -> str:
        """The text of its context blocks."""
        return " ".join(
            e["text"] for b in self.blocks if b.get("type") == "context" for e in b["elements"]
        )


@dataclass
class Upload:
    """A file through files.getUploadURLExternal → upload URL → files.completeUploadExternal."""

    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    completed: bool = False

"""What a Slack turn keeps in the ledger: where to answer (`Route`), what was posted (`Sent`),
and the files to fetch. JSON, so any process can deliver after a restart."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bots.slack.progress import Place
from bots.slack.tenant import Tenant

# The fields of a Slack file object the download needs (urls, size, type, names).
_FILE_FIELDS = ("id", "name", "mimetype", "size", "url_private", "url_private_download")


@dataclass(frozen=True, slots=True)
class Route:
    """The thread a turn answers in, the member, and the team whose token posts there."""

    channel: str
    thread_ts: str
    user_id: str
    user_team: str
    team_id: str
    enterprise_id: str | None = None
    assistant: bool = False  # a thread of Slack's assistant surface: a status line
    org_install: bool = False  # the app is installed org-wide in `enterprise_id`

    @property
    def tenant(self) -> Tenant:
        """Whose installation (and token) answers this turn."""
        return Tenant(self.team_id or None, self.enterprise_id, self.org_install)

    @property
    def place(self) -> Place:
        """Where progress and answers are posted."""
        return Place(self.channel, self.thread_ts, self.user_id, assistant=self.assistant)

    def dump(self) -> str:
        """As JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, raw: str) -> Route:
        """From JSON."""
        return cls(**json.loads(raw))


@dataclass(slots=True)
class Sent:
    """What was posted for a turn so far: a second delivery goes on from there."""

    placeholder: str | None = None  # ts of the "Thinking…" message, until the answer takes it
    pieces: int = 0  # text messages of the answer already posted
    answer_file: bool = False  # a long answer's whole text is uploaded as answer.md
    images: int = 0  # images already uploaded
    slow: bool = False  # the member was told Samsar is slow
    status: bool = False  # an assistant status line is up
    pending: bool = False  # a note of its place in line was being posted: it may be up
    messages: list[str] = field(default_factory=list)

    def dump(self) -> str:
        """As JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, raw: str) -> Sent:
        """From JSON ("" is nothing posted yet)."""
        return cls(**json.loads(raw)) if raw else cls()


def dump_files(files: list[dict[str, Any]]) -> str:
    """The files a member attached, as the download needs them."""
    kept = [{k: file[k] for k in _FILE_FIELDS if k in file} for file in files]
    return json.dumps(kept) if kept else ""


def load_files(raw: str) -> list[dict[str, Any]]:
    """From JSON ("" is none)."""
    loaded: list[dict[str, Any]] = json.loads(raw) if raw else []
    return loaded

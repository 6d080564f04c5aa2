"""Slack payloads → core values: which events are members talking, their keys and threads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.internals import extract_is_enterprise_install

from bots.slack.tenant import Tenant
from core.models import ChatUser, ThreadRef

# Message subtypes that are a member writing; edits, deletions, joins and bot posts are not.
_MEMBER_SUBTYPES = (None, "file_share", "thread_broadcast")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass(frozen=True, slots=True)
class Origin:
    """Who wrote, where, in which thread; `key` is stable across every redelivery."""

    team_id: str
    enterprise_id: str | None
    user_team: str
    user_id: str
    channel: str
    thread_ts: str
    key: str
    org_install: bool = False  # the app is installed org-wide in `enterprise_id`

    @property
    def tenant(self) -> Tenant:
        """Whose installation serves this origin."""
        return Tenant(self.team_id or None, self.enterprise_id, self.org_install)

    @property
    def thread(self) -> ThreadRef:
        """The core thread this origin talks in."""
        return ThreadRef("slack", self.team_id, self.channel, self.thread_ts)

    def plain_user(self) -> ChatUser:
        """The member without a users.info look-up (enough for ownership checks)."""
        return ChatUser(
            "slack", self.user_id, workspace_id=self.user_team, enterprise_id=self.enterprise_id
        )


def is_member_message(event: dict[str, Any]) -> bool:
    """A human's new message: not a bot, not an edit, deletion, join or other notice."""
    return (
        event.get("subtype") in _MEMBER_SUBTYPES
        and not event.get("bot_id")
        and isinstance(event.get("user"), str)
        and bool(event.get("user"))
        and isinstance(event.get("ts"), str)
        and isinstance(event.get("channel"), str)
    )


def member_files(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The file objects a message carries (none when `files` is not a list of objects)."""
    files = event.get("files")
    if not isinstance(files, list):
        return []
    return [file for file in files if isinstance(file, dict)]


def message_key(team_id: str, channel: str, ts: str) -> str:
    """A message's key: its (channel, ts) is the same in app_mention and message events and in
    every retry, unlike `event_id`, which differs between the two event types."""
    return f"slack:{team_id}:{channel}:{ts}"


def command_key(trigger_id: str) -> str:
    """A slash command's key: its `trigger_id` is unique per invocation."""
    return f"slack:command:{trigger_id}"


def member_team(payload: dict[str, Any], event: dict[str, Any] | None = None) -> str:
    """The workspace a member belongs to: one rule for messages, commands and App Home.

    Message events name it (`user_team`, else `team`): in a Slack Connect channel that is the
    member's own company, not the channel's. Commands and App Home come from the member's own
    workspace, which is the payload's team. With the Grid org (`enterprise_id`, which replaces
    it in the member's key), this makes one Samsar user of one person wherever they act.
    """
    event = event or {}
    return str(event.get("user_team") or event.get("team") or payload.get("team_id") or "")


def org_install(payload: dict[str, Any]) -> bool:
    """Whether the app is installed org-wide where the payload comes from (as bolt reads it:
    the event's authorizations, or the command's flag)."""
    try:
        return bool(extract_is_enterprise_install(payload))
    except (AttributeError, TypeError, IndexError, KeyError):  # an odd authorizations list
        return False


def tenant_of(payload: dict[str, Any]) -> Tenant:
    """Whose installation serves a payload that names no thread (App Home, a command)."""
    team = payload.get("team_id")
    return Tenant(
        team if isinstance(team, str) and team else None,
        enterprise_of(payload),
        org_install(payload),
    )


def enterprise_of(payload: dict[str, Any]) -> str | None:
    """The Enterprise Grid org the payload comes from (None outside Grid)."""
    enterprise = payload.get("enterprise_id")
    return enterprise if isinstance(enterprise, str) and enterprise else None


def message_origin(body: dict[str, Any], event: dict[str, Any]) -> Origin:
    """Where a member's message lives; a top-level message starts a thread under itself."""
    team = str(body.get("team_id") or event.get("team") or "")
    channel = str(event["channel"])
    ts = str(event["ts"])
    return Origin(
        team_id=team,
        enterprise_id=enterprise_of(body),
        user_team=member_team(body, event),
        user_id=str(event["user"]),
        channel=channel,
        thread_ts=str(event.get("thread_ts") or ts),
        key=message_key(team, channel, ts),
        org_install=org_install(body),
    )


def command_origin(payload: dict[str, Any], thread_ts: str = "") -> Origin:
    """Where a slash command was typed (a thread only once the bot has posted its root)."""
    return Origin(
        team_id=str(payload.get("team_id") or ""),
        enterprise_id=enterprise_of(payload),
        user_team=member_team(payload),
        user_id=str(payload["user_id"]),
        channel=str(payload["channel_id"]),
        thread_ts=thread_ts,
        key=command_key(str(payload.get("trigger_id") or "")),
        org_install=org_install(payload),
    )


def mentions(text: str, user_id: str | None) -> bool:
    """Whether `text` mentions `user_id`."""
    return bool(user_id) and any(m.group(1) == user_id for m in _MENTION.finditer(text))


def without_mention(text: str, user_id: str | None) -> str:
    """The text with the bot's own mention taken out."""
    if not user_id:
        return text.strip()
    cleaned = _MENTION.sub(lambda m: "" if m.group(1) == user_id else m.group(0), text)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip()

"""Slack payloads → core values: which events are members talking, their keys and threads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
        and bool(event.get("user"))
        and bool(event.get("ts"))
    )


def message_key(team_id: str, channel: str, ts: str) -> str:
    """A message's key: its (channel, ts) is the same in app_mention and message events and in
    every retry, unlike `event_id`, which differs between the two event types."""
    return f"slack:{team_id}:{channel}:{ts}"


def command_key(trigger_id: str) -> str:
    """A slash command's key: its `trigger_id` is unique per invocation."""
    return f"slack:command:{trigger_id}"


def message_origin(body: dict[str, Any], event: dict[str, Any]) -> Origin:
    """Where a member's message lives; a top-level message starts a thread under itself."""
    team = str(body.get("team_id") or event.get("team") or "")
    channel = str(event["channel"])
    ts = str(event["ts"])
    return Origin(
        team_id=team,
        enterprise_id=body.get("enterprise_id") or None,
        user_team=str(event.get("user_team") or event.get("team") or team),
        user_id=str(event["user"]),
        channel=channel,
        thread_ts=str(event.get("thread_ts") or ts),
        key=message_key(team, channel, ts),
    )


def command_origin(payload: dict[str, Any], thread_ts: str = "") -> Origin:
    """Where a slash command was typed (a thread only once the bot has posted its root)."""
    return Origin(
        team_id=str(payload.get("team_id") or ""),
        enterprise_id=payload.get("enterprise_id") or None,
        user_team=str(payload.get("team_id") or ""),
        user_id=str(payload["user_id"]),
        channel=str(payload["channel_id"]),
        thread_ts=thread_ts,
        key=command_key(str(payload.get("trigger_id") or "")),
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

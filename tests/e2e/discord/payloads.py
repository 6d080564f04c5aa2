"""Discord API payloads shaped like the real ones (v10), for the fake and the tests."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31) | (1 << 35) | (1 << 38)
"""View channel, send messages, read history, use application commands, threads."""
MANAGE_GUILD = 1 << 5
TEXT, DM, PUBLIC_THREAD = 0, 1, 11
CHAT_INPUT, SUB_COMMAND, ATTACHMENT_OPTION = 1, 1, 11
EPHEMERAL, LOADING = 1 << 6, 1 << 7

_counter = itertools.count(1)

Payload = dict[str, Any]


def snowflake() -> int:
    """A fresh id whose timestamp is now (so discord.py sees a new interaction as unexpired)."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_counter) & 0x3FFFFF)


def snowflake_in_shard(shard_id: int, count: int) -> int:
    """A fresh guild id whose events go to shard `shard_id` of `count` ((id >> 22) % count)."""
    fresh = snowflake()
    ms = fresh >> 22
    ms -= (ms - shard_id) % count  # a moment earlier, on the shard's own millisecond
    return (ms << 22) | (fresh & 0x3FFFFF)


def now_iso() -> str:
    """The current time as Discord writes it."""
    return datetime.now(UTC).isoformat()


def user(user_id: int, name: str, *, bot: bool = False) -> Payload:
    """A user object."""
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member(who: Payload, *, permissions: int | None = None) -> Payload:
    """A guild member object (`permissions` only inside interactions)."""
    out: Payload = {
        "user": who,
        "nick": None,
        "avatar": None,
        "roles": [],
        "joined_at": now_iso(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
    }
    if permissions is not None:
        out["permissions"] = str(permissions)
    return out


def text_channel(channel_id: int, guild_id: int, name: str = "general") -> Payload:
    """A guild text channel."""
    return {
        "id": str(channel_id),
        "type": TEXT,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def thread(thread_id: int, guild_id: int, parent_id: int, owner_id: int, name: str) -> Payload:
    """A public thread channel."""
    return {
        "id": str(thread_id),
        "type": PUBLIC_THREAD,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": now_iso(),
            "locked": False,
        },
    }


def dm_channel(channel_id: int, recipient: Payload) -> Payload:
    """A DM channel with one member."""
    return {"id": str(channel_id), "type": DM, "recipients": [recipient], "last_message_id": None}


def role(role_id: int, name: str, permissions: int) -> Payload:
    """A guild role."""
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild(guild_id: int, channels: list[Payload], threads: list[Payload], me: Payload) -> Payload:
    """A GUILD_CREATE payload."""
    return {
        "id": str(guild_id),
        "name": "Test Server",
        "icon": None,
        "owner_id": "1",
        "roles": [role(guild_id, "@everyone", MEMBER_PERMISSIONS)],
        "channels": channels,
        "threads": threads,
        "members": [member(me)],
        "member_count": 3,
        "features": [],
        "premium_tier": 0,
        "emojis": [],
        "stickers": [],
        "unavailable": False,
        "large": False,
        "joined_at": now_iso(),
        "mfa_level": 0,
        "verification_level": 0,
        "explicit_content_filter": 0,
        "default_message_notifications": 0,
        "system_channel_id": None,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }


def message(
    message_id: int,
    channel_id: int,
    author: Payload,
    content: str,
    *,
    guild_id: int | None = None,
    attachments: list[Payload] | None = None,
    mentions: list[Payload] | None = None,
    flags: int = 0,
    kind: int = 0,
    webhook_id: int | None = None,
    reference: Payload | None = None,
) -> Payload:
    """A message object (for MESSAGE_CREATE and REST answers)."""
    out: Payload = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "components": [],
        "pinned": False,
        "type": kind,
        "flags": flags,
    }
    if guild_id is not None:
        out["guild_id"] = str(guild_id)
        out["member"] = {k: v for k, v in member(author).items() if k != "user"}
    if webhook_id is not None:
        out["webhook_id"] = str(webhook_id)
    if reference is not None:
        out["message_reference"] = reference
    return out


def attachment(attachment_id: int, filename: str, size: int, url: str, mime: str) -> Payload:
    """An attachment object."""
    return {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "content_type": mime,
    }

"""Discord events as core values: who, where, what (event keys stable across replays)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord

from bots.discord.routes import Attachment, InteractionToken
from bots.member_fields import bounded_name, bounded_url
from core.errors import InputRejected
from core.models import ChatUser, ThreadRef
from core.settings import Settings

Interaction = discord.Interaction[discord.Client]
PLATFORM = "discord"
_THREAD_CHANNELS = (discord.ChannelType.text, discord.ChannelType.news)


def interaction_key(interaction: Interaction) -> str:
    """The event key of an interaction (its id is the same in every redelivery)."""
    return f"discord:interaction:{interaction.id}"


def message_key(message: discord.Message) -> str:
    """The event key of a message."""
    return f"discord:message:{message.id}"


def chat_user(user: discord.User | discord.Member, *, is_admin: bool = False) -> ChatUser:
    """A Discord user (ids are global) as a core member."""
    guild = user.guild if isinstance(user, discord.Member) else None
    return ChatUser(
        platform=PLATFORM,
        user_id=str(user.id),
        workspace_id=str(guild.id) if guild else None,
        username=bounded_name(user.name),
        display_name=bounded_name(user.display_name),
        avatar_url=bounded_url(user.display_avatar.url),
        is_admin=is_admin,
    )


def interaction_user(interaction: Interaction) -> ChatUser:
    """The caller; admin when their member permissions in the interaction include Manage Server."""
    admin = interaction.guild_id is not None and interaction.permissions.manage_guild
    return chat_user(interaction.user, is_admin=admin)


def conversation_of(channel: object, guild_id: int | None) -> ThreadRef | None:
    """The conversation a thread or DM channel is; None for any other channel."""
    if isinstance(channel, discord.Thread):
        return ThreadRef(PLATFORM, str(guild_id or ""), str(channel.parent_id), str(channel.id))
    if isinstance(channel, discord.DMChannel):
        return ThreadRef(PLATFORM, "", str(channel.id), str(channel.id))
    return None


def bot_is_present(interaction: Interaction) -> bool:
    """Whether the bot itself can post where the interaction came from: a server it was added
    to, or its own DM. A member's own install (`users`) reaches servers and DMs the bot is not
    in: there only the interaction's own responses can be posted."""
    if interaction.guild_id:
        return interaction.is_guild_integration()
    return bool(interaction.context.dm_channel)


def can_open_thread(channel: object) -> bool:
    """True for guild channels where a public thread can start from a message."""
    kind = getattr(channel, "type", None)
    return kind in _THREAD_CHANNELS and not isinstance(channel, discord.Thread)


def pending(guild_id: int | None, channel_id: int | None, origin: str) -> ThreadRef:
    """A conversation not yet in a thread: one per command or mention (`origin` keeps it apart)."""
    return ThreadRef(PLATFORM, str(guild_id or ""), str(channel_id or ""), f"{origin}:pending")


def thread_ref(thread: discord.Thread) -> ThreadRef:
    """The conversation of a thread the bot opened."""
    return ThreadRef(PLATFORM, str(thread.guild.id), str(thread.parent_id), str(thread.id))


def scope_channel(interaction: Interaction) -> ThreadRef:
    """Where a channel-scoped admin prompt applies: the channel (a thread's parent)."""
    channel = interaction.channel
    channel_id = (
        channel.parent_id if isinstance(channel, discord.Thread) else interaction.channel_id
    )
    return ThreadRef(PLATFORM, str(interaction.guild_id or ""), str(channel_id), str(channel_id))


def without_mention(content: str, bot_id: int) -> str:
    """The message text with the bot's own mention removed."""
    return re.sub(rf"<@!?{bot_id}>", "", content).strip()


def image_attachments(
    attachments: Sequence[discord.Attachment], settings: Settings, *, strict: bool
) -> list[Attachment]:
    """The image attachments to fetch when the turn runs, checked against the limits by what
    Discord declares (nothing is downloaded here); non-images are refused when `strict`,
    else skipped."""
    wanted = []
    for item in attachments:
        declared = item.content_type if isinstance(item.content_type, str) else ""
        mime = declared.split(";")[0].strip().lower()
        if not mime.startswith("image/"):
            if strict:
                raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=item.filename)
            continue
        if type(item.size) is not int or item.size > settings.max_input_image_bytes:
            raise InputRejected(
                InputRejected.IMAGE_TOO_LARGE,
                limit=settings.max_input_image_bytes,
                detail=item.filename,
            )
        wanted.append(Attachment(item.url, item.filename, mime, item.size))
    if len(wanted) > settings.max_input_images:
        raise InputRejected(InputRejected.TOO_MANY_IMAGES, limit=settings.max_input_images)
    return wanted


def interaction_token(interaction: Interaction) -> InteractionToken:
    """The deferred interaction's token, to answer through it from any process."""
    created = interaction.created_at.timestamp()
    return InteractionToken.fresh(interaction.application_id, interaction.token, created)

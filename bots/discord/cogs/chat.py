"""`/chat` (an answer, then a thread that is the conversation) and `/reset`."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bots.discord import texts, translate
from bots.discord.delivery import InteractionTarget
from bots.discord.progress import defer, defer_in_line
from bots.discord.routes import Route, dump_attachments
from bots.discord.translate import Interaction
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.models import TurnRequest
from core.settings import Settings

log = logging.getLogger(__name__)


class ChatCog(commands.Cog):
    """Start and reset conversations with slash commands."""

    def __init__(self, service: ConversationService, settings: Settings, turns: KeyedLocks) -> None:
        self._service = service
        self._settings = settings
        self._turns = turns

    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.command(name="chat", description="Ask the assistant; the answer opens a thread.")
    @app_commands.describe(prompt="What to ask", image="An image for the assistant to look at")
    async def chat(
        self, interaction: Interaction, prompt: str, image: discord.Attachment | None = None
    ) -> None:
        """Answer, then open a public thread from the answer that carries the conversation."""
        channel = interaction.channel
        here = translate.conversation_of(channel, interaction.guild_id)
        # A thread needs the bot in the server (not so under a member's own install).
        present = translate.bot_is_present(interaction)
        fresh = here is None and present and translate.can_open_thread(channel)
        where = here or translate.pending(
            interaction.guild_id, interaction.channel_id, f"chat-{interaction.id}"
        )
        # The place in the conversation's line is taken now, before the acknowledgement, and
        # held until the turn is recorded: a later message is recorded (and answered) after.
        place = self._turns.hold(where.key)
        if not await defer_in_line(interaction, place, ephemeral=False):
            return
        async with place:
            attachments = translate.image_attachments(
                [image] if image else [], self._settings, strict=True
            )
            route = Route(
                channel_id=interaction.channel_id or 0,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                upload_limit=interaction.filesize_limit,
                interaction=translate.interaction_token(interaction),
                opens_thread=fresh,
                title=prompt,
            )
            request = TurnRequest(
                user=translate.interaction_user(interaction),
                thread=where,
                text=prompt,
                attachments=dump_attachments(attachments),
            )
            await self._service.submit(
                translate.interaction_key(interaction),
                request,
                route=route.dump(),
                has_attachments=bool(attachments),
            )

    @app_commands.command(
        name="reset", description="Start a fresh conversation in this thread or DM."
    )
    async def reset(self, interaction: Interaction) -> None:
        """Forget this thread's or DM's session (its owner or an admin)."""
        if not await defer(interaction, ephemeral=True):
            return
        where = translate.conversation_of(interaction.channel, interaction.guild_id)
        if where is None:
            text = texts.NOTHING_TO_RESET
        else:
            removed = await self._service.reset(translate.interaction_user(interaction), where)
            text = texts.RESET_DONE if removed else texts.RESET_NONE
        await InteractionTarget(interaction, ephemeral=True).send_text(text)

"""`/imagine`: a generated picture, a status that counts the seconds, a thread to go on in."""

from __future__ import annotations

import logging
from typing import Literal

from discord import app_commands
from discord.ext import commands

from bots.discord import translate
from bots.discord.progress import defer_in_line
from bots.discord.routes import Route
from bots.discord.translate import Interaction
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.models import ImageChoice, TurnKind, TurnRequest
from core.settings import Settings

log = logging.getLogger(__name__)

Quality = Literal["auto", "low", "medium", "high"]
Format = Literal["png", "jpeg", "webp"]


class ImagineCog(commands.Cog):
    """Image generation on demand."""

    def __init__(
        self,
        service: ConversationService,
        settings: Settings,
        turns: KeyedLocks,
    ) -> None:
        self._service = service
        self._settings = settings
        self._turns = turns

    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.command(name="imagine", description="Generate an image from a prompt.")
    @app_commands.describe(
        prompt="What to draw",
        size="auto, or WIDTHxHEIGHT such as 1024x1024 or 1536x1024",
        quality="Rendering quality",
        format="File format",
    )
    async def imagine(
        self,
        interaction: Interaction,
        prompt: str,
        size: str | None = None,
        quality: Quality | None = None,
        format: Format | None = None,
    ) -> None:
        """Post the picture (revised prompt as caption) and, in a channel, open a thread from it
        that carries the conversation (so "make it blue" works there); a thread or DM goes on."""
        choice = ImageChoice(size=size, quality=quality, format=format)
        channel = interaction.channel
        here = translate.conversation_of(channel, interaction.guild_id)
        # A thread needs the bot in the server (not so under a member's own install).
        present = translate.bot_is_present(interaction)
        fresh = here is None and present and translate.can_open_thread(channel)
        where = here or translate.pending(
            interaction.guild_id, interaction.channel_id, f"imagine-{interaction.id}"
        )
        place = self._turns.hold(where.key)  # in the conversation's line from now on
        if not await defer_in_line(interaction, place, ephemeral=False):
            return
        async with place:  # held until the turn is recorded: later messages come after
            route = Route(
                channel_id=interaction.channel_id or 0,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                upload_limit=interaction.filesize_limit,
                interaction=translate.interaction_token(interaction),
                opens_thread=fresh,
                title=prompt,
                with_text=False,
            )
            request = TurnRequest(
                user=translate.interaction_user(interaction),
                thread=where,
                text=prompt,
                kind=TurnKind.IMAGINE,
            )
            await self._service.submit(
                translate.interaction_key(interaction), request, route=route.dump(), choice=choice
            )

"""`/chat` (an answer, then a thread that is the conversation) and `/reset`."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bots.discord import texts, translate
from bots.discord.answers import post_answer
from bots.discord.delivery import InteractionTarget
from bots.discord.progress import defer, defer_in_line
from bots.discord.translate import Interaction
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.models import IncomingMessage
from core.settings import Settings

log = logging.getLogger(__name__)


class ChatCog(commands.Cog):
    """Start and reset conversations with slash commands."""

    def __init__(self, service: ConversationService, settings: Settings, turns: KeyedLocks) -> None:
        self._service = service
        self._settings = settings
        self._turns = turns

    @app_commands.command(name="chat", description="Ask the assistant; the answer opens a thread.")
    @app_commands.describe(prompt="What to ask", image="An image for the assistant to look at")
    async def chat(
        self, interaction: Interaction, prompt: str, image: discord.Attachment | None = None
    ) -> None:
        """Answer, then open a public thread from the answer that carries the conversation."""
        channel = interaction.channel
        here = translate.conversation_of(channel, interaction.guild_id)
        fresh = here is None and translate.can_open_thread(channel)
        where = here or translate.pending(
            interaction.guild_id, interaction.channel_id, f"chat-{interaction.id}"
        )
        # The place in the conversation's line is taken now, before the acknowledgement, and
        # held from the download to the posted answer: later messages come after this turn.
        place = self._turns.hold(where.key)
        if not await defer_in_line(interaction, place, ephemeral=False):
            return
        async with place:
            attached = [image] if image else []
            images = await translate.input_images(attached, self._settings, strict=True)
            reply = await self._service.ask(
                IncomingMessage(
                    event_key=translate.interaction_key(interaction),
                    user=translate.interaction_user(interaction),
                    thread=where,
                    text=prompt,
                    images=images,
                )
            )
            if reply is None:
                return
            await post_answer(
                self._service,
                InteractionTarget(interaction),
                reply,
                upload_limit=interaction.filesize_limit,
                pending=where if fresh else None,
                title=prompt,
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

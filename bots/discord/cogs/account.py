"""`/credits`, `/buy`, `/studio` and `/persona`: private answers about the member's own account."""

from __future__ import annotations

import logging

from discord import app_commands
from discord.ext import commands

from bots import texts as shared
from bots.discord import texts, translate
from bots.discord.delivery import answer_privately
from bots.discord.progress import defer
from bots.discord.translate import Interaction
from core.conversation.service import MAX_BUY_CREDITS, ConversationService

log = logging.getLogger(__name__)


class AccountCog(commands.Cog):
    """The member's credits, checkout and Studio links, and persona."""

    # A member's own install reaches every server and DM (the bot's own answers are the
    # interaction's); see "Install it for yourself" in the README.
    persona = app_commands.Group(
        name="persona",
        description="Your own instructions for the assistant.",
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        allowed_contexts=app_commands.AppCommandContext(
            guild=True, dm_channel=True, private_channel=True
        ),
    )

    def __init__(self, service: ConversationService) -> None:
        self._service = service

    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.command(name="credits", description="Your Samsar credit balance.")
    async def credits(self, interaction: Interaction) -> None:
        """Show the balance."""
        if not await defer(interaction, ephemeral=True):
            return
        balance = await self._service.credits(translate.interaction_user(interaction))
        await answer_privately(interaction, shared.balance_text(balance.remaining))

    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.command(name="buy", description="A checkout link to buy Samsar credits.")
    @app_commands.describe(credits="How many credits to buy")
    async def buy(
        self, interaction: Interaction, credits: app_commands.Range[int, 1, MAX_BUY_CREDITS]
    ) -> None:
        """Send a checkout link."""
        if not await defer(interaction, ephemeral=True):
            return
        link = await self._service.buy(
            translate.interaction_user(interaction),
            credits,
            event_key=translate.interaction_key(interaction),
        )
        await answer_privately(interaction, texts.buy_link(link.credits, link.url))

    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.command(name="studio", description="A short-lived Samsar Studio login link.")
    async def studio(self, interaction: Interaction) -> None:
        """Send a Studio login link."""
        if not await defer(interaction, ephemeral=True):
            return
        link = await self._service.studio_link(
            translate.interaction_user(interaction),
            event_key=translate.interaction_key(interaction),
        )
        await answer_privately(interaction, texts.studio_link(link.url))

    @persona.command(name="set", description="Set your own instructions for the assistant.")
    @app_commands.describe(text="How the assistant should behave with you")
    async def persona_set(self, interaction: Interaction, text: str) -> None:
        """Store the member's persona on Samsar."""
        if not await defer(interaction, ephemeral=True):
            return
        await self._service.persona_set(
            translate.interaction_user(interaction),
            text,
            event_key=translate.interaction_key(interaction),
        )
        await answer_privately(interaction, texts.PERSONA_SET)

    @persona.command(name="show", description="Show your instructions for the assistant.")
    async def persona_show(self, interaction: Interaction) -> None:
        """Show the persona as last set through the bot."""
        if not await defer(interaction, ephemeral=True):
            return
        persona = await self._service.persona_show(translate.interaction_user(interaction))
        await answer_privately(
            interaction, texts.persona_show(persona) if persona else texts.PERSONA_NONE
        )

    @persona.command(name="clear", description="Remove your instructions for the assistant.")
    async def persona_clear(self, interaction: Interaction) -> None:
        """Clear the persona."""
        if not await defer(interaction, ephemeral=True):
            return
        await self._service.persona_set(
            translate.interaction_user(interaction),
            None,
            event_key=translate.interaction_key(interaction),
        )
        await answer_privately(interaction, texts.PERSONA_CLEARED)

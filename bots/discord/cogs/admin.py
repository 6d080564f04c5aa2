"""`/prompt set|show|clear`: admin instructions for the server or one channel (Manage Server)."""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bots.discord import texts, translate
from bots.discord.delivery import answer_privately
from bots.discord.progress import defer
from bots.discord.translate import Interaction
from core.conversation.prompts import EffectivePrompt
from core.conversation.service import ConversationService
from core.models import PromptScope

log = logging.getLogger(__name__)

Scope = Literal["server", "channel"]
_SCOPES: dict[str, PromptScope] = {"server": PromptScope.WORKSPACE, "channel": PromptScope.CHANNEL}


class AdminCog(commands.Cog):
    """Admin prompts: Discord hides them from members without Manage Server; core checks again."""

    prompt = app_commands.Group(
        name="prompt",
        description="Instructions for the assistant in this server or channel (admins).",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
        # Server-only, and never part of a member's own install.
        allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        allowed_contexts=app_commands.AppCommandContext(guild=True),
    )

    def __init__(self, service: ConversationService) -> None:
        self._service = service

    @prompt.command(name="set", description="Set the server's or this channel's instructions.")
    @app_commands.describe(text="The instructions", scope="server (default) or this channel")
    async def prompt_set(
        self, interaction: Interaction, text: str, scope: Scope = "server"
    ) -> None:
        """Store the prompt (audited)."""
        if not await defer(interaction, ephemeral=True):
            return
        await self._service.admin.prompt_set(
            translate.interaction_user(interaction),
            translate.scope_channel(interaction),
            _SCOPES[scope],
            text,
        )
        await answer_privately(interaction, texts.PROMPT_SET.format(scope=scope))

    @prompt.command(name="show", description="Show the server's or this channel's instructions.")
    @app_commands.describe(scope="server (default) or this channel")
    async def prompt_show(self, interaction: Interaction, scope: Scope = "server") -> None:
        """Show one scope's prompt."""
        if not await defer(interaction, ephemeral=True):
            return
        shown = await self._service.admin.prompt_show(
            translate.interaction_user(interaction),
            translate.scope_channel(interaction),
            _SCOPES[scope],
        )
        text = None if shown is None or isinstance(shown, EffectivePrompt) else shown.text
        answer = texts.prompt_show(scope, text) if text else texts.PROMPT_NONE.format(scope=scope)
        await answer_privately(interaction, answer)

    @prompt.command(name="clear", description="Remove the server's or this channel's instructions.")
    @app_commands.describe(scope="server (default) or this channel")
    async def prompt_clear(self, interaction: Interaction, scope: Scope = "server") -> None:
        """Remove one scope's prompt (audited)."""
        if not await defer(interaction, ephemeral=True):
            return
        removed = await self._service.admin.prompt_clear(
            translate.interaction_user(interaction),
            translate.scope_channel(interaction),
            _SCOPES[scope],
        )
        template = texts.PROMPT_CLEARED if removed else texts.PROMPT_WAS_NONE
        await answer_privately(interaction, template.format(scope=scope))

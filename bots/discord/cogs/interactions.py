"""Every interaction gets an answer: buttons and forms of an earlier version, suggestions the
bot does not offer, and, as a last resort, anything still unanswered near Discord's 3 s.

Discord shows "This interaction failed" for an interaction nobody answered within 3 s. The
commands defer at once; this cog answers the rest: a click on a component or a form submitted
whose custom id this bot does not know (old messages after a deploy), and any interaction
that nothing has answered 2.5 s after it arrived (a private sentence, or no suggestions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import discord
from discord.ext import commands

from bots.discord import buttons, texts
from bots.discord.errors import answer_at_once
from bots.discord.gateway_guard import GatewayGuard
from bots.discord.translate import Interaction

log = logging.getLogger(__name__)

ANSWER_WITHIN = 2.5
"""Seconds after which an unanswered interaction gets the last-resort answer (Discord: 3)."""

KNOWN_CUSTOM_IDS: frozenset[str] = frozenset()
"""Fixed custom ids this version handles besides the buttons' `samsar:<action>:<turn>`."""


class InteractionsCog(commands.Cog):
    """Answers what no command answers; installs the gateway's checks."""

    def __init__(self, bot: discord.Client, *, answer_within: float = ANSWER_WITHIN) -> None:
        self._guard = GatewayGuard(bot)
        self._answer_within = answer_within
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._answers: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        """Check messages and interactions before discord.py parses them."""
        self._guard.install()

    async def cog_unload(self) -> None:
        """Stop the last-resort timers (the bot is closing)."""
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()

    @commands.Cog.listener()
    async def on_interaction(self, interaction: Interaction) -> None:
        """Old components and forms are answered here; the rest within the deadline."""
        data: Mapping[str, object] = interaction.data or {}
        custom_id = data.get("custom_id")
        ours = buttons.parse(custom_id) is not None  # the buttons cog answers it
        if interaction.type is discord.InteractionType.component and not ours:
            if custom_id not in KNOWN_CUSTOM_IDS:
                await answer_at_once(interaction, texts.UNKNOWN_COMPONENT, why="unknown component")
            return
        if interaction.type is discord.InteractionType.modal_submit and not ours:
            if custom_id not in KNOWN_CUSTOM_IDS:
                await answer_at_once(interaction, texts.UNKNOWN_FORM, why="unknown form")
            return
        loop = asyncio.get_running_loop()
        self._pending[interaction.id] = loop.call_later(
            self._answer_within, self._last_resort, interaction
        )

    def _last_resort(self, interaction: Interaction) -> None:
        self._pending.pop(interaction.id, None)
        if interaction.response.is_done():
            return
        task = asyncio.get_running_loop().create_task(
            answer_at_once(interaction, texts.UNEXPECTED, why="nothing answered in time")
        )
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

"""DISCORD_ALLOWED_GUILDS: the bot serves the servers on the list, and DMs, nothing else.

An invite link travels: whoever adds the bot to their server would spend the operator's Samsar
account there. With the list set, the bot leaves any other server: when it is added, and at
READY (or when one comes back from an outage) for those it was in already. Until Discord has
taken it out, that server's messages are dropped and its interactions get a short private
"not enabled here", at the gateway before discord.py reads them (as `gateway_guard` checks
shapes there), so nothing is recorded, downloaded or billed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import discord
from discord.ext import commands

from bots.discord import texts
from bots.discord.gateway_guard import answer_unparsed, answerable
from bots.log_budget import LogBudget

log = logging.getLogger(__name__)

Parser = Callable[[Any], None]


class GuildGate(commands.Cog):
    """Keeps the bot to the allowed servers (and DMs)."""

    def __init__(self, bot: discord.Client, allowed: Collection[str]) -> None:
        self._bot = bot
        self._allowed = frozenset(int(guild_id) for guild_id in allowed)
        self._budget = LogBudget(log)
        self._leaving: set[int] = set()
        self._answers: set[asyncio.Task[None]] = set()

    def allows(self, guild_id: object) -> bool:
        """Whether an event from `guild_id` (None: a DM) may reach the bot. An id that is not
        a number is let through, for `gateway_guard` to refuse as off-shape."""
        text = str(guild_id) if type(guild_id) is int else guild_id
        if not (isinstance(text, str) and text.isascii() and text.isdigit()):
            return True
        return int(text) in self._allowed

    async def cog_load(self) -> None:
        """Check messages and interactions before discord.py parses them."""
        # discord.py keeps its parsers in this dict, and the gateway reads them from it.
        parsers: dict[str, Parser] = self._bot._connection.parsers
        parse_message, parse_interaction = parsers["MESSAGE_CREATE"], parsers["INTERACTION_CREATE"]
        parsers["MESSAGE_CREATE"] = lambda data: self._message(parse_message, data)
        parsers["INTERACTION_CREATE"] = lambda data: self._interaction(parse_interaction, data)

    def _message(self, parse: Parser, data: Any) -> None:
        guild_id = data.get("guild_id") if isinstance(data, Mapping) else None
        if self.allows(guild_id):
            parse(data)
            return
        self._budget.warn("discord message from a server not allowed ignored", {"guild": guild_id})

    def _interaction(self, parse: Parser, data: Any) -> None:
        guild_id = data.get("guild_id") if isinstance(data, Mapping) else None
        target = answerable(data)
        if self.allows(guild_id) or target is None:  # no id and token: the guard's to ignore
            parse(data)
            return
        self._budget.warn("discord interaction from a server not allowed", {"guild": guild_id})
        answer = answer_unparsed(self._bot, *target, texts.NOT_ENABLED_HERE)
        task = asyncio.get_running_loop().create_task(answer)
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Leave the servers the bot was already in that are not on the list."""
        for guild in list(self._bot.guilds):
            await self._leave_unless_allowed(guild)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Someone added the bot to a server: stay only if it is on the list."""
        await self._leave_unless_allowed(guild)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server is back from an outage: stay only if it is on the list."""
        await self._leave_unless_allowed(guild)

    async def _leave_unless_allowed(self, guild: discord.Guild) -> None:
        if guild.id in self._allowed or guild.id in self._leaving:
            return
        self._leaving.add(guild.id)
        log.warning("leaving a server not in DISCORD_ALLOWED_GUILDS", extra={"guild": guild.id})
        try:
            await guild.leave()
        except discord.HTTPException as exc:  # tried again at the next READY
            log.warning(
                "could not leave a server",
                extra={"guild": guild.id, "status": exc.status, "code": exc.code},
            )
        finally:
            self._leaving.discard(guild.id)

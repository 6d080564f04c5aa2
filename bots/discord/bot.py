"""The Discord bot: intents, cogs and command sync in `setup_hook`, and the two error hooks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bots import health
from bots.bootstrap import App, MissingSettingError
from bots.discord import errors
from bots.discord.attachments import DISCORD_CDN_ORIGINS, AttachmentFetcher
from bots.discord.cogs.account import AccountCog
from bots.discord.cogs.admin import AdminCog
from bots.discord.cogs.chat import ChatCog
from bots.discord.cogs.imagine import ImagineCog
from bots.discord.cogs.interactions import InteractionsCog
from bots.discord.cogs.messages import MessagesCog
from bots.discord.commands_check import admit
from bots.discord.guild_gate import GuildGate
from bots.discord.translate import PLATFORM, Interaction
from bots.discord.turns import DiscordTurns
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.settings import Settings

log = logging.getLogger(__name__)

STATUS_EVERY = 5.0
"""Seconds between status updates of a running image generation."""


def intents() -> discord.Intents:
    """Guilds, guild and DM messages, and message content (privileged: enable it in the portal)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    return wanted


class SamsarCommandTree(app_commands.CommandTree[discord.Client]):
    """The command tree whose error hook turns every failure into a reply."""

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        """Render a BotError to the caller; log anything else and say so."""
        await errors.on_command_error(interaction, error)

    async def interaction_check(self, interaction: Interaction, /) -> bool:
        """Run only commands that fit the bot's; answer the others (see `commands_check`)."""
        return await admit(self, interaction)


class SamsarDiscordBot(commands.Bot):
    """The Samsar assistant on Discord; `options` reach `discord.Client` (e.g. in tests)."""

    def __init__(
        self,
        service: ConversationService,
        settings: Settings,
        *,
        status_every: float = STATUS_EVERY,
        cdn_origins: Sequence[str] = DISCORD_CDN_ORIGINS,
        **options: Any,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=SamsarCommandTree,
            **options,
        )
        self.service = service
        self.settings = settings
        self.status_every = status_every
        self.cdn_origins = tuple(cdn_origins)  # where member attachments may be fetched
        # One FIFO lock per conversation, shared by messages and slash commands, so a turn
        # whose attachment downloads slowly is not overtaken by the next one.
        self.turns = KeyedLocks()

    async def setup_hook(self) -> None:
        """Add the cogs and sync the commands: to DISCORD_GUILD_IDS at once, else globally."""
        await self.add_cog(ChatCog(self.service, self.settings, self.turns))
        await self.add_cog(MessagesCog(self, self.service, self.settings, self.turns))
        await self.add_cog(ImagineCog(self.service, self.settings, self.turns))
        await self.add_cog(AccountCog(self.service))
        await self.add_cog(AdminCog(self.service))
        await self.add_cog(InteractionsCog(self))
        if self.settings.discord_allowed_guilds:  # added last: its gateway check runs first
            await self.add_cog(GuildGate(self, self.settings.discord_allowed_guilds))
        guild_ids = self.settings.discord_guild_ids
        for guild_id in guild_ids:
            guild = discord.Object(int(guild_id))
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("commands synced", extra={"guild_id": guild_id, "count": len(synced)})
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("commands synced globally", extra={"count": len(synced)})
        # From here on this process answers Discord turns, its own and any left unfinished.
        attachments = AttachmentFetcher(
            max_bytes=self.settings.max_input_image_bytes,
            origins=self.cdn_origins,
            proxy=self.http.proxy,
        )
        self.service.worker.attach(
            PLATFORM,
            DiscordTurns(
                self, self.service, status_every=self.status_every, attachments=attachments
            ),
        )

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: the messages cog handles what members write."""

    async def on_ready(self) -> None:
        """Connected: ready for /readyz."""
        health.connected(PLATFORM, True)

    async def on_resumed(self) -> None:
        """Connected again after a blip."""
        health.connected(PLATFORM, True)

    async def on_disconnect(self) -> None:
        """Lost the gateway (discord.py reconnects by itself)."""
        health.connected(PLATFORM, False)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """A gateway event handler failed: answer the member's message when there is one."""
        error = sys.exc_info()[1]
        message = args[0] if args and isinstance(args[0], discord.Message) else None
        if message is not None and error is not None:
            await errors.on_message_error(message, error)
            return
        log.error("event handler failed", exc_info=error, extra={"event": event_method})


async def run_discord(app: App) -> None:
    """Run the Discord bot on the wired app until cancelled (needs DISCORD_TOKEN)."""
    settings = app.settings
    token = settings.discord_token
    if token is None:
        raise MissingSettingError("DISCORD_TOKEN")
    # discord.py reads both from class attributes: one bot per process, so this is its own.
    discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    async with SamsarDiscordBot(app.service, settings) as bot:
        await bot.start(token.get_secret_value())


def is_fatal(error: BaseException) -> bool:
    """Errors no restart can cure: a refused token, intents not enabled, a missing setting."""
    return isinstance(
        error, discord.LoginFailure | discord.PrivilegedIntentsRequired | MissingSettingError
    )

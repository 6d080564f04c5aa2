"""The Discord bot: intents, shards, cogs and command sync in `setup_hook`, and the two error
hooks."""

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
from bots.discord.cogs.buttons import ButtonsCog
from bots.discord.cogs.chat import ChatCog
from bots.discord.cogs.imagine import ImagineCog
from bots.discord.cogs.interactions import InteractionsCog
from bots.discord.cogs.messages import MessagesCog
from bots.discord.commands_check import admit
from bots.discord.guild_gate import GuildGate
from bots.discord.shards import INVALID_SHARD, SHARDING_REQUIRED, ShardingRefused, ShardsReady
from bots.discord.translate import PLATFORM, Interaction
from bots.discord.turns import DiscordTurns
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.settings import Settings

log = logging.getLogger(__name__)

STATUS_EVERY = 5.0
"""Seconds between status updates of a running image generation."""


# What the bot does in a guild: see channels, post and reply (with links and files), open a
# thread from its answer and post in it. The invite URL asks for these.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    create_public_threads=True,
    send_messages_in_threads=True,
)
INVITE_SCOPES = ("bot", "applications.commands")


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


class SamsarDiscordBot(commands.AutoShardedBot):
    """The Samsar assistant on Discord, over the shards of DISCORD_SHARD_COUNT/IDS (unset:
    Discord's recommended count, all here); `options` reach `discord.Client` (e.g. in tests)."""

    def __init__(
        self,
        service: ConversationService,
        settings: Settings,
        *,
        status_every: float = STATUS_EVERY,
        cdn_origins: Sequence[str] = DISCORD_CDN_ORIGINS,
        **options: Any,
    ) -> None:
        if settings.discord_shard_ids:  # else every shard of the count runs here
            options["shard_ids"] = list(settings.discord_shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=SamsarCommandTree,
            shard_count=settings.discord_shard_count,
            **options,
        )
        self.shards_ready = ShardsReady()
        self.service = service
        self.settings = settings
        self.status_every = status_every
        self.cdn_origins = tuple(cdn_origins)  # where member attachments may be fetched
        # One FIFO lock per conversation, shared by messages and slash commands, so a turn
        # whose attachment downloads slowly is not overtaken by the next one.
        self.turns = KeyedLocks()

    async def setup_hook(self) -> None:
        """Add the cogs and sync the commands: to DISCORD_GUILD_IDS at once, else globally."""
        health.connected(PLATFORM, False)  # until every shard of this process is READY
        if self.shard_count is None:
            # Discord's recommended count, all here. Asked now, so the shards connect to
            # DISCORD_GATEWAY_URL: discord.py would take the URL of this answer instead.
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        invite = None
        if self.application_id is not None:
            invite = discord.utils.oauth_url(
                self.application_id, permissions=PERMISSIONS, scopes=INVITE_SCOPES
            )
            log.info("discord invite url", extra={"url": invite})
        await self.add_cog(ChatCog(self.service, self.settings, self.turns))
        await self.add_cog(MessagesCog(self, self.service, self.settings, self.turns))
        await self.add_cog(ImagineCog(self.service, self.settings, self.turns))
        await self.add_cog(AccountCog(self.service))
        await self.add_cog(AdminCog(self.service))
        await self.add_cog(InteractionsCog(self))
        await self.add_cog(ButtonsCog(self.service, self.turns))
        if self.settings.discord_allowed_guilds:  # added last: its gateway check runs first
            await self.add_cog(GuildGate(self, self.settings.discord_allowed_guilds))
        guild_ids = self.settings.discord_guild_ids
        for guild_id in guild_ids:
            guild = discord.Object(int(guild_id))
            self.tree.copy_global_to(guild=guild)
            try:
                synced = await self.tree.sync(guild=guild)
            except discord.Forbidden:  # one wrong id in DISCORD_GUILD_IDS stops nothing else
                log.error(
                    "operator error: Discord refused the commands for server %s in"
                    " DISCORD_GUILD_IDS: the bot is not in it, or was invited without the"
                    " applications.commands scope; invite it with %s",
                    guild_id,
                    invite or "the URL of the Discord set-up",
                    extra={"guild_id": guild_id},
                )
                continue
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

    async def on_shard_ready(self, shard_id: int) -> None:
        """A shard is READY with its guilds; /readyz is ready once every shard here is."""
        self.shards_ready.up(shard_id)
        log.info("discord shard ready", extra={"shard_id": shard_id, "shards": self.shard_count})
        self._report_readiness()

    async def on_shard_resumed(self, shard_id: int) -> None:
        """A shard is connected again after a blip."""
        self.shards_ready.up(shard_id)
        self._report_readiness()

    async def on_shard_disconnect(self, shard_id: int) -> None:
        """A shard lost the gateway (discord.py reconnects it by itself)."""
        self.shards_ready.down(shard_id)
        self._report_readiness()

    def _report_readiness(self) -> None:
        mine = self.shard_ids if self.shard_ids is not None else range(self.shard_count or 1)
        health.connected(PLATFORM, self.shards_ready.all_of(mine))

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
    try:
        async with SamsarDiscordBot(app.service, settings) as bot:
            await bot.start(token.get_secret_value())
    except discord.ConnectionClosed as exc:
        # The count is the operator's: Discord will refuse it on every restart as well.
        sharding = exc.code in (INVALID_SHARD, SHARDING_REQUIRED)
        if sharding and settings.discord_shard_count is not None:
            raise ShardingRefused(exc.code, settings) from exc
        raise
    finally:
        health.connected(PLATFORM, False)


def is_fatal(error: BaseException) -> bool:
    """Errors no restart can cure: a refused token, intents not enabled, a missing setting,
    shards Discord refuses."""
    return isinstance(
        error,
        discord.LoginFailure
        | discord.PrivilegedIntentsRequired
        | MissingSettingError
        | ShardingRefused,
    )

"""The two top-level error hooks: app commands and gateway events. Every failure ends as a reply."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bots import texts as shared
from bots.discord import texts
from bots.discord.delivery import (
    ANSWERED,
    NO_PINGS,
    PRIVATE,
    ChannelTarget,
    InteractionTarget,
)
from bots.discord.render import Outgoing
from bots.discord.translate import Interaction
from core.errors import BotError

log = logging.getLogger(__name__)


def user_text(error: BaseException) -> str:
    """What the member reads for any error."""
    if isinstance(error, BotError):
        return shared.describe(error, texts.COMMANDS)
    return texts.UNEXPECTED


async def on_command_error(interaction: Interaction, error: app_commands.AppCommandError) -> None:
    """Render a command's failure to its caller (a BotError or a command that does not fit
    clearly, anything else logged)."""
    cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    command = interaction.command.qualified_name if interaction.command else None
    fields = {"command": command, "error": type(cause).__name__, "interaction_id": interaction.id}
    if isinstance(cause, BotError):
        log.info("command refused", extra=fields)
    elif (sentence := _does_not_fit(interaction, cause)) is not None:
        log.info("command does not fit", extra=fields)
        await _tell(interaction, sentence)
        return
    else:
        log.error(
            "command failed",
            exc_info=cause,
            extra={"command": command, "interaction_id": interaction.id},
        )
    await _tell(interaction, user_text(cause))


def _does_not_fit(interaction: Interaction, error: BaseException) -> str | None:
    """The sentence for a command discord.py could not match to the bot's (stale, unknown,
    an option it could not convert); None for any other failure."""
    name = interaction.command.qualified_name if interaction.command else None
    if isinstance(error, app_commands.CommandNotFound):
        return texts.unknown_command(" ".join([*error.parents, error.name])[:100])
    if isinstance(error, app_commands.CommandSignatureMismatch):
        return texts.stale_command(error.command.qualified_name)
    if isinstance(error, app_commands.TransformerError):
        return texts.stale_command(name or "?")
    return None


async def _tell(interaction: Interaction, text: str) -> None:
    try:
        if interaction.type is discord.InteractionType.autocomplete:
            if not interaction.response.is_done():
                await interaction.response.autocomplete([])  # suggestions have no text
        elif not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
        elif not interaction.extras.get(ANSWERED):
            private = bool(interaction.extras.get(PRIVATE))
            await InteractionTarget(interaction, ephemeral=private).send(Outgoing(text))
        else:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException as exc:
        log.warning("could not tell the error", extra={"status": exc.status, "code": exc.code})


async def answer_at_once(interaction: Interaction, text: str, *, why: str) -> None:
    """Answer an interaction privately (an autocomplete: with no suggestions), unless it
    was answered meanwhile; Discord's refusals only log."""
    if interaction.response.is_done():
        return
    log.info("interaction answered", extra={"why": why, "interaction_id": interaction.id})
    try:
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.InteractionResponded:
        return
    except discord.HTTPException as exc:
        log.info("interaction not answered", extra={"status": exc.status, "code": exc.code})


async def on_message_error(message: discord.Message, error: BaseException) -> None:
    """Answer a member's message whose handling failed."""
    if isinstance(error, BotError):
        log.info(
            "message refused",
            extra={"error": type(error).__name__, "message_id": message.id},
        )
    else:
        log.error("message handling failed", exc_info=error, extra={"message_id": message.id})
    try:
        await ChannelTarget(message.channel, reply_to=message).send(Outgoing(user_text(error)))
    except discord.HTTPException as exc:
        log.warning("could not tell the error", extra={"status": exc.status, "code": exc.code})

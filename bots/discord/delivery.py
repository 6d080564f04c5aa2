"""Where an answer goes: the interaction (original, then followups), a channel, or a new thread."""

from __future__ import annotations

import logging
from typing import Protocol

import discord

from bots.discord import texts
from bots.discord.render import Outgoing
from bots.discord.translate import Interaction

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
ANSWERED = "samsar_answered"  # Interaction.extras flag: the original response holds an answer
PRIVATE = "samsar_private"  # Interaction.extras flag: the deferral was ephemeral
# 401 Invalid Webhook Token (50027) / 404 Unknown Webhook (10015): the 15-minute token is gone.
_TOKEN_GONE = frozenset({50027, 10015})


class Target(Protocol):
    """Somewhere messages can be posted, in order."""

    async def send(self, out: Outgoing) -> discord.Message:
        """Post one message and return it."""
        ...


class ChannelTarget:
    """A channel or thread; the first message may reply to the member's message."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        reply_to: discord.Message | None = None,
        mentions: discord.AllowedMentions = NO_PINGS,
    ) -> None:
        self._channel = channel
        self._reply_to = reply_to
        self._mentions = mentions

    async def send(self, out: Outgoing) -> discord.Message:
        """Post to the channel (model output never pings)."""
        reference = (
            self._reply_to.to_reference(fail_if_not_exists=False) if self._reply_to else None
        )
        self._reply_to = None
        if reference is None:
            return await self._channel.send(
                out.content, files=out.files(), allowed_mentions=self._mentions
            )
        return await self._channel.send(
            out.content,
            files=out.files(),
            allowed_mentions=self._mentions,
            reference=reference,
            mention_author=False,
        )


class InteractionTarget:
    """The deferred response first, followups next; the channel (or a DM) once the token expired."""

    def __init__(self, interaction: Interaction, *, ephemeral: bool = False) -> None:
        self._interaction = interaction
        self._ephemeral = ephemeral
        self._fallback: Target | None = None

    async def send(self, out: Outgoing) -> discord.Message:
        """Post through the interaction while its token lives."""
        interaction = self._interaction
        if self._fallback is None and not interaction.is_expired():
            try:
                return await self._send_in_interaction(out)
            except discord.HTTPException as exc:
                if exc.code not in _TOKEN_GONE:
                    raise
                log.warning(
                    "interaction token expired; posting elsewhere",
                    extra={"interaction_id": interaction.id, "status": exc.status},
                )
        if self._fallback is None:
            self._fallback = self._elsewhere()
            await self._fallback.send(Outgoing(texts.late_answer(interaction.user.mention)))
        return await self._fallback.send(out)

    async def send_text(self, text: str) -> discord.Message:
        """Post a plain sentence."""
        return await self.send(Outgoing(text))

    async def _send_in_interaction(self, out: Outgoing) -> discord.Message:
        interaction = self._interaction
        if not interaction.extras.get(ANSWERED):
            message = await interaction.edit_original_response(
                content=out.content, attachments=out.files(), allowed_mentions=NO_PINGS
            )
            interaction.extras[ANSWERED] = True
            return message
        return await interaction.followup.send(
            out.content,
            files=out.files(),
            allowed_mentions=NO_PINGS,
            ephemeral=self._ephemeral,
            wait=True,
        )

    def _elsewhere(self) -> Target:
        """Private answers go to the member's DMs, public ones to the channel."""
        interaction = self._interaction
        only_them = discord.AllowedMentions(users=[interaction.user])
        if self._ephemeral:
            return ChannelTarget(interaction.user, mentions=only_them)
        channel = interaction.client.get_partial_messageable(
            interaction.channel_id or 0, guild_id=interaction.guild_id
        )
        return ChannelTarget(channel, mentions=only_them)


async def answer_privately(interaction: Interaction, text: str) -> None:
    """An ephemeral answer to the deferred interaction."""
    await InteractionTarget(interaction, ephemeral=True).send_text(text)

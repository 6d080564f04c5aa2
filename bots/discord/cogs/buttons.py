"""Clicks on the buttons under pictures and failures, and the edit form, as member actions.

A click is acknowledged without a new message (Discord's "deferred update"), recorded as a turn
keyed by the interaction (a redelivered click is the same turn), and answered in the
conversation like any message: in its thread or DM, with typing while Samsar works, the new
picture with its own buttons. Only the member whose turn it was may click; anyone else gets
the usual private hint, and nothing is recorded or billed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import discord
from discord.ext import commands

from bots.discord import buttons, translate
from bots.discord.errors import user_text
from bots.discord.routes import Route, Sent
from bots.discord.translate import PLATFORM, Interaction
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.errors import BotError, InputRejected, NotThreadOwner
from core.models import Redo, ThreadRef, Turn, TurnKind

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()


class ButtonsCog(commands.Cog):
    """Answers every click and form of ours, by its custom id (after restarts too)."""

    def __init__(self, service: ConversationService, turns: KeyedLocks) -> None:
        self._service = service
        self._turns = turns

    @commands.Cog.listener()
    async def on_interaction(self, interaction: Interaction) -> None:
        """A click on one of our buttons or selects, or the edit form sent."""
        data: Mapping[str, object] = interaction.data or {}
        clicked = buttons.parse(data.get("custom_id"))
        if clicked is None:
            return
        try:
            if interaction.type is discord.InteractionType.component:
                await self._click(interaction, clicked, data)
            elif interaction.type is discord.InteractionType.modal_submit:
                await self._form(interaction, clicked, data)
        except BotError as exc:
            await _private(interaction, user_text(exc))
        except Exception as exc:  # the top of a click: logged, and never left unanswered
            log.exception("click failed", extra={"custom_id": clicked.action})
            await _private(interaction, user_text(exc))

    async def _click(
        self, interaction: Interaction, clicked: buttons.Clicked, data: Mapping[str, object]
    ) -> None:
        earlier = await self._earlier(interaction, clicked)
        if clicked.action == Redo.EDIT:
            await interaction.response.send_modal(buttons.EditForm(clicked.turn_id))
            return
        size = None
        if clicked.action == Redo.SIZE:
            values = data.get("values")
            size = values[0] if isinstance(values, list) and values else None
            if size not in buttons.SIZES:
                raise InputRejected(InputRejected.BAD_VALUE, detail="pick one of the sizes")
        await self._again(interaction, clicked, earlier, size=size)

    async def _form(
        self, interaction: Interaction, clicked: buttons.Clicked, data: Mapping[str, object]
    ) -> None:
        if clicked.action != buttons.EDIT_FORM:
            return
        earlier = await self._earlier(interaction, clicked)
        instruction = _text_input(data, buttons.INSTRUCTION).strip()
        if not instruction:
            raise InputRejected(InputRejected.EMPTY)
        await self._again(interaction, clicked, earlier, instruction=instruction)

    async def _earlier(self, interaction: Interaction, clicked: buttons.Clicked) -> Turn:
        """The turn the click acts on, when it is the clicker's (else a private refusal)."""
        earlier = await self._service.turn(clicked.turn_id)
        if earlier is None or earlier.request is None:
            raise InputRejected(InputRejected.GONE)
        if earlier.user_key != translate.interaction_user(interaction).key:
            raise NotThreadOwner(earlier.request.user.display_name)
        return earlier

    async def _again(
        self,
        interaction: Interaction,
        clicked: buttons.Clicked,
        earlier: Turn,
        *,
        size: str | None = None,
        instruction: str = "",
    ) -> None:
        """Acknowledge the click, then record the turn in its conversation's line."""
        where, channel_id = _conversation(interaction, earlier)
        place = self._turns.hold(where.key)
        present = translate.bot_is_present(interaction)
        token = None
        if present:
            await interaction.response.defer()  # a click: acknowledged without a message
        else:  # a member's own install: only the interaction's own messages can be posted
            await interaction.response.defer(thinking=True)
            token, channel_id = (
                translate.interaction_token(interaction),
                interaction.channel_id or 0,
            )
        async with place:
            route = Route(
                channel_id=channel_id,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                upload_limit=interaction.filesize_limit,
                interaction=token,
                with_text=clicked.redo is Redo.RETRY and earlier.kind == TurnKind.ASK,
            )
            turn = await self._service.again(
                translate.interaction_key(interaction),
                translate.interaction_user(interaction),
                clicked.turn_id,
                clicked.redo,
                route=route.dump(),
                thread=where,
                size=size,
                instruction=instruction,
            )
        log.info(
            "button clicked",
            extra={"action": clicked.action, "turn_id": clicked.turn_id, "new": turn is not None},
        )


def _conversation(interaction: Interaction, earlier: Turn) -> tuple[ThreadRef, int]:
    """The conversation the clicked message belongs to, and the channel to answer in: the
    thread or DM it is in, or the thread opened from it (a picture posted in a channel)."""
    here = translate.conversation_of(interaction.channel, interaction.guild_id)
    if here is not None:
        return here, interaction.channel_id or 0
    opened = Sent.load(earlier.posted).thread_id
    channel_id = interaction.channel_id or 0
    if opened:
        return ThreadRef(
            PLATFORM, str(interaction.guild_id or ""), str(channel_id), str(opened)
        ), opened
    assert earlier.request is not None
    return earlier.request.thread, channel_id


def _text_input(data: Mapping[str, object], custom_id: str) -> str:
    """The value of a form's text input (Discord nests them in action rows)."""
    rows = data.get("components")
    for row in rows if isinstance(rows, list) else []:
        inner = row.get("components") if isinstance(row, dict) else None
        for item in inner if isinstance(inner, list) else []:
            if isinstance(item, dict) and item.get("custom_id") == custom_id:
                value = item.get("value")
                return value if isinstance(value, str) else ""
    return ""


async def _private(interaction: Interaction, text: str) -> None:
    """A private sentence: the answer to the click, or a followup once it was acknowledged."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException as exc:
        log.warning("click not answered", extra={"status": exc.status})

"""Messages: mentions open a conversation, threads and DMs continue theirs, others get a hint."""

from __future__ import annotations

import logging
from collections import OrderedDict

import discord
from discord.ext import commands

from bots import texts as shared
from bots.discord import texts, translate
from bots.discord.delivery import ChannelTarget
from bots.discord.render import DEFAULT_UPLOAD_LIMIT, Outgoing
from bots.discord.routes import Route, dump_attachments
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.errors import NotThreadOwner
from core.models import ThreadRef, TurnRequest
from core.settings import Settings

log = logging.getLogger(__name__)

HINTS_REMEMBERED = 10_000
_MEMBER_MESSAGES = (discord.MessageType.default, discord.MessageType.reply)


class MessagesCog(commands.Cog):
    """Turns members' messages into conversation turns (edits arrive as updates and are ignored)."""

    def __init__(
        self,
        bot: discord.Client,
        service: ConversationService,
        settings: Settings,
        turns: KeyedLocks,
    ) -> None:
        self._bot = bot
        self._service = service
        self._settings = settings
        self._hinted: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._turns = turns  # per conversation, FIFO: answers keep the writing order

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a mention, a message in a conversation thread, or a DM."""
        me = self._bot.user
        if me is None or not self._from_a_member(message):
            return
        mentioned = me.id in message.raw_mentions
        guild_id = message.guild.id if message.guild else None
        here = translate.conversation_of(message.channel, guild_id)
        if here is None:  # a guild channel: only a mention starts a conversation
            if mentioned:
                origin = translate.pending(guild_id, message.channel.id, f"mention-{message.id}")
                opens = translate.can_open_thread(message.channel)
                await self._answer(message, origin, opens_thread=opens)
            return
        # The conversation's lock is the first await (a mention above starts a conversation
        # of its own, so it has nothing to queue behind): one message's lookup, attachment
        # download, turn and answer all finish before the next one starts, so a slow
        # download cannot let a later message overtake it.
        async with self._turns.hold(here.key):
            await self._continue(message, here, mentioned=mentioned)

    async def _continue(
        self, message: discord.Message, here: ThreadRef, *, mentioned: bool
    ) -> None:
        """Answer in a thread or DM that is the member's conversation (or a mention starts one)."""
        if isinstance(message.channel, discord.Thread):
            session = await self._service.session_of(here)
            if session is None and not mentioned:
                return  # a thread that is not a conversation with the bot
            if session is not None and session.owner_key != translate.chat_user(message.author).key:
                await self._hint(message, here, session.owner_display)
                return
        await self._answer(message, here, opens_thread=False)

    def _from_a_member(self, message: discord.Message) -> bool:
        """Not a bot (this one included), not a webhook, not a system message."""
        return (
            not message.author.bot
            and message.webhook_id is None
            and message.type in _MEMBER_MESSAGES
            and bool(message.content or message.attachments)
        )

    async def _answer(
        self, message: discord.Message, where: ThreadRef, *, opens_thread: bool
    ) -> None:
        """Record the turn; the worker answers it (replying to this message)."""
        me = self._bot.user
        text = translate.without_mention(message.content, me.id) if me else message.content
        attachments = translate.image_attachments(message.attachments, self._settings, strict=False)
        route = Route(
            channel_id=message.channel.id,
            guild_id=message.guild.id if message.guild else None,
            user_id=message.author.id,
            upload_limit=message.guild.filesize_limit if message.guild else DEFAULT_UPLOAD_LIMIT,
            reply_to=message.id,
            opens_thread=opens_thread,
            title=text,
        )
        request = TurnRequest(
            user=translate.chat_user(message.author),
            thread=where,
            text=text,
            attachments=dump_attachments(attachments),
        )
        await self._service.submit(
            translate.message_key(message),
            request,
            route=route.dump(),
            has_attachments=bool(attachments),
        )

    async def _hint(self, message: discord.Message, here: ThreadRef, owner: str | None) -> None:
        """Tell a non-owner how to start their own conversation, once per person per thread."""
        seen = (here.key, str(message.author.id))
        if seen in self._hinted:
            return
        self._hinted[seen] = None
        if len(self._hinted) > HINTS_REMEMBERED:
            self._hinted.popitem(last=False)
        hint = shared.describe(NotThreadOwner(owner), texts.COMMANDS)
        await ChannelTarget(message.channel, reply_to=message).send(Outgoing(hint))

"""Discord's side of a durable turn: fetch the attachments, show progress, deliver.

Everything works from the turn's stored route (channel, message, interaction token) through
REST, never from an `Interaction` object in memory: so a turn recovered after a restart, or
delivered on a retry, goes exactly where the first try would have gone, and `Sent` tells what
is already there (a retry edits or goes on; it never posts twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import discord
from discord.utils import MISSING

from bots import texts as shared_texts
from bots.discord import buttons, errors, texts
from bots.discord.answers import open_thread
from bots.discord.attachments import AttachmentFetcher
from bots.discord.render import Outgoing, render
from bots.discord.routes import Route, Sent, load_attachments
from core.conversation.service import ConversationService
from core.errors import BotError, Undeliverable
from core.models import Prepared, Reply, Turn, TurnKind, TurnRequest
from core.ports import Posted

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
TYPING_EVERY = 8.0  # Discord shows "typing" for 10 s after each trigger
# 401 Invalid Webhook Token (50027) / 404 Unknown Webhook (10015): the 15-minute token is gone.
_TOKEN_GONE = frozenset({50027, 10015})
# Unknown Channel, Missing Access: no retry will ever post there.
_GONE_FOR_GOOD = frozenset({10003, 50001})
_ORIGINAL = cast(int, "@original")  # the webhook route takes this in place of a message id


class DiscordTurns:
    """core.ports.TurnChannel for Discord."""

    def __init__(
        self,
        client: discord.Client,
        service: ConversationService,
        *,
        status_every: float,
        attachments: AttachmentFetcher,
    ) -> None:
        self._client = client
        self._service = service
        self._status_every = status_every
        self._attachments = attachments

    async def prepare(self, turn: Turn, request: TurnRequest) -> Prepared:
        """The member as recorded at intake, and the attached images from Discord's CDN."""
        images = await self._attachments.images(load_attachments(request.attachments))
        return Prepared(request.user, images)

    async def waiting(
        self, turn: Turn, request: TurnRequest, posted: Posted, place: int | None
    ) -> None:
        """A command's response says where the turn is in line (a message shows nothing until
        the typing starts: a reply posted for the wait would outlive it)."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        if route.interaction is None or not route.interaction.alive():
            return
        sent.waiting = True
        if not await posted.save_while_waiting(sent.dump()):
            return  # it started meanwhile: its worker shows the progress
        await self._webhook(route).edit_message(
            _ORIGINAL, content=shared_texts.in_line(place), allowed_mentions=NO_PINGS
        )

    @contextlib.asynccontextmanager
    async def working(
        self, turn: Turn, request: TurnRequest, posted: Posted
    ) -> AsyncIterator[_Working]:
        """Typing in the channel, or for a picture on a command, the seconds counted."""
        route = Route.load(turn.route)
        loop = asyncio.get_running_loop()
        started = loop.time()
        interaction = route.interaction
        if Sent.load(posted.value).waiting and interaction is not None and interaction.alive():
            with contextlib.suppress(discord.HTTPException):  # only the progress is lost
                await self._webhook(route).edit_message(
                    _ORIGINAL, content=texts.THINKING, allowed_mentions=NO_PINGS
                )
        if route.interaction is not None and request.kind is TurnKind.IMAGINE:

            async def show() -> None:
                seconds = round(loop.time() - started)
                await self._webhook(route).edit_message(
                    _ORIGINAL, content=texts.generating(seconds), allowed_mentions=NO_PINGS
                )

            every = self._status_every
        elif route.interaction is None:

            async def show() -> None:
                await self._client.http.send_typing(route.channel_id)

            every = TYPING_EVERY
        else:  # a command: Discord shows "thinking…" by itself
            yield _Working(self, turn, route, posted)
            return
        stop = asyncio.Event()
        ticker = asyncio.create_task(_every(every, show, stop, first=route.interaction is None))
        try:
            yield _Working(self, turn, route, posted)
        finally:
            # Let an edit in flight finish, so it can never land after the answer.
            stop.set()
            await ticker

    async def deliver(
        self, turn: Turn, request: TurnRequest, outcome: Reply | BotError, posted: Posted
    ) -> None:
        """Post the answer (its thread opened from the first message) or the error sentence."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        if isinstance(outcome, BotError):
            messages, opens = [Outgoing(errors.user_text(outcome))], False
            view, view_at = buttons.failure_buttons(turn.turn_id, outcome), 0
        else:
            messages = await render(
                outcome, upload_limit=route.upload_limit, with_text=route.with_text
            )
            opens = route.opens_thread
            # Under the last picture: what a member does next with it.
            pictures = [index for index, out in enumerate(messages) if out.uploads]
            view = buttons.picture_buttons(turn.turn_id) if outcome.images and pictures else None
            view_at = pictures[-1] if pictures else -1
        target = _Target(self, route, sent, posted)
        for index, out in enumerate(messages):
            if index >= sent.count:
                await target.post(out, first=index == 0, view=view if index == view_at else None)
            if index == 0 and opens and sent.thread_id is None and sent.head is not None:
                await self._open_thread(request, route, sent, posted)
        log.info("answer posted", extra={"turn_id": turn.turn_id, "messages": len(messages)})

    async def give_up(self, turn: Turn, request: TurnRequest, posted: Posted) -> None:
        """A short note that the answer could not be posted: in place of a command's
        "thinking…" while its token lives (so it is never left thinking), else in the channel."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        token = route.interaction
        if token is not None and token.alive() and not sent.answered and not sent.late:
            try:
                await self._webhook(route).edit_message(
                    _ORIGINAL, content=texts.UNDELIVERABLE, allowed_mentions=NO_PINGS
                )
                return
            except discord.HTTPException as exc:
                log.info("could not end the command's thinking", extra={"status": exc.status})
        mention = discord.AllowedMentions(users=[discord.Object(route.user_id)])
        await self._client.get_partial_messageable(route.channel_id).send(
            texts.undeliverable(f"<@{route.user_id}>"), allowed_mentions=mention
        )

    def _webhook(self, route: Route) -> discord.Webhook:
        assert route.interaction is not None
        token = route.interaction
        return discord.Webhook.partial(token.application_id, token.token, client=self._client)

    async def _open_thread(
        self, request: TurnRequest, route: Route, sent: Sent, posted: Posted
    ) -> None:
        channel = self._client.get_partial_messageable(route.channel_id, guild_id=route.guild_id)
        assert sent.head is not None
        thread = await open_thread(
            self._service, channel.get_partial_message(sent.head), request.thread, route.title
        )
        sent.thread_id = thread.id if thread is not None else 0
        if thread is None:
            await channel.send(texts.NO_THREAD, allowed_mentions=NO_PINGS)
        await posted.save(sent.dump())


class _Target:
    """Posts the pieces of one answer in order, and notes each in `Sent`."""

    def __init__(self, turns: DiscordTurns, route: Route, sent: Sent, posted: Posted) -> None:
        self._turns = turns
        self._route = route
        self._sent = sent
        self._posted = posted

    async def post(self, out: Outgoing, *, first: bool, view: discord.ui.View | None) -> None:
        try:
            message_id = await self._send(out, first=first, view=view or MISSING)
        except discord.HTTPException as exc:
            if exc.status in (403, 404) and exc.code in _GONE_FOR_GOOD:
                raise Undeliverable(f"discord refused the post: {exc.code}") from exc
            raise
        sent = self._sent
        sent.count += 1
        sent.head = sent.head or message_id
        await self._posted.save(sent.dump())

    async def _send(self, out: Outgoing, *, first: bool, view: Any) -> int:
        route, sent, client = self._route, self._sent, self._turns._client
        if sent.thread_id:
            thread = client.get_partial_messageable(sent.thread_id, guild_id=route.guild_id)
            message = await thread.send(
                out.content, files=out.files(), allowed_mentions=NO_PINGS, view=view
            )
            return message.id
        token = route.interaction
        if token is not None and token.alive() and not sent.late:
            try:
                return await self._through_interaction(out, view)
            except discord.HTTPException as exc:
                if exc.code not in _TOKEN_GONE:
                    raise
                log.warning("interaction token expired; posting in the channel")
        channel = client.get_partial_messageable(route.channel_id, guild_id=route.guild_id)
        if token is not None:  # the command's token expired: the channel, with a mention
            only_them = discord.AllowedMentions(users=[discord.Object(route.user_id)])
            if not sent.late:
                await channel.send(
                    texts.late_answer(f"<@{route.user_id}>"), allowed_mentions=only_them
                )
                sent.late = True
                await self._posted.save(sent.dump())
            message = await channel.send(
                out.content, files=out.files(), allowed_mentions=only_them, view=view
            )
            return message.id
        if first and route.reply_to is not None:
            reference = discord.MessageReference(
                message_id=route.reply_to, channel_id=route.channel_id, fail_if_not_exists=False
            )
            message = await channel.send(
                out.content,
                files=out.files(),
                allowed_mentions=NO_PINGS,
                reference=reference,
                mention_author=False,
                view=view,
            )
            return message.id
        message = await channel.send(
            out.content, files=out.files(), allowed_mentions=NO_PINGS, view=view
        )
        return message.id

    async def _through_interaction(self, out: Outgoing, view: Any) -> int:
        webhook = self._turns._webhook(self._route)
        if not self._sent.answered:
            message = await webhook.edit_message(
                _ORIGINAL,
                content=out.content,
                attachments=out.files(),
                allowed_mentions=NO_PINGS,
                view=view,
            )
            self._sent.answered = True
            return message.id
        sent = await webhook.send(
            out.content, files=out.files(), allowed_mentions=NO_PINGS, wait=True, view=view
        )
        return sent.id


class _Working:
    """core.ports.Working: says once where the answer will come when Samsar is slow."""

    def __init__(self, turns: DiscordTurns, turn: Turn, route: Route, posted: Posted) -> None:
        self._turns = turns
        self._turn = turn
        self._route = route
        self._posted = posted

    async def slow(self) -> None:
        sent = Sent.load(self._posted.value)
        if sent.slow:
            return
        try:
            if self._route.interaction is not None and self._route.interaction.alive():
                await self._turns._webhook(self._route).edit_message(
                    _ORIGINAL, content=texts.SLOW, allowed_mentions=NO_PINGS
                )
            else:
                channel = self._turns._client.get_partial_messageable(self._route.channel_id)
                await channel.send(texts.SLOW, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("slow notice not shown", extra={"status": exc.status})
            return
        sent.slow = True
        await self._posted.save(sent.dump())


async def _every(
    every: float, show: Callable[[], Awaitable[None]], stop: asyncio.Event, *, first: bool
) -> None:
    """Call `show` every `every` seconds (at once too when `first`) until `stop` is set;
    failures are logged."""
    if not first and await _stopped(stop, every):
        return
    while True:
        try:
            await show()
        except (discord.HTTPException, OSError) as exc:
            log.debug("progress update failed", extra={"error": repr(exc)})
        if await _stopped(stop, every):
            return


async def _stopped(stop: asyncio.Event, within: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=within)
    except TimeoutError:
        return False
    return True

"""A member's message as a turn in its thread: owner check, progress, the answer or the error."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bots import texts as shared_texts
from bots.slack import texts
from bots.slack.files import FileFetcher
from bots.slack.members import Members
from bots.slack.progress import Place, Progress
from bots.slack.render import Renderer
from bots.slack.texts import COMMANDS
from bots.slack.translate import Origin
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.errors import BotError, NotThreadOwner
from core.models import ImageChoice, IncomingMessage, Reply

log = logging.getLogger(__name__)

_REMEMBERED = 10_000


class Conversations:
    """Runs turns for the Slack listeners; every outcome ends as a post in the thread."""

    def __init__(
        self,
        service: ConversationService,
        client: AsyncWebClient,
        members: Members,
        files: FileFetcher,
        *,
        progress_every: float,
    ) -> None:
        self._service = service
        self._client = client
        self._members = members
        self._files = files
        self._progress_every = progress_every
        self.renderer = Renderer(client)
        self._threads = KeyedLocks()
        self._assistant_threads: OrderedDict[tuple[str, str], None] = OrderedDict()

    def assistant_thread(self, channel: str, thread_ts: str) -> None:
        """Remember a thread of Slack's assistant surface (it gets a status line)."""
        _remember(self._assistant_threads, (channel, thread_ts), None)

    def place(self, origin: Origin) -> Place:
        """Where the answer to `origin` goes."""
        assistant = (origin.channel, origin.thread_ts) in self._assistant_threads
        return Place(origin.channel, origin.thread_ts, origin.user_id, assistant=assistant)

    async def is_conversation(self, origin: Origin) -> bool:
        """Whether the thread already has a session (a bot conversation to follow)."""
        return await self._service.session_of(origin.thread) is not None

    async def owned_by_other(self, origin: Origin) -> bool:
        """True (and the member gets a private hint) when another member owns the thread."""
        session = await self._service.session_of(origin.thread)
        if session is None or session.owner_key == origin.plain_user().key:
            return False
        hint = shared_texts.describe(NotThreadOwner(session.owner_display), COMMANDS)
        await self.renderer.private(self.place(origin), hint)
        return True

    async def converse(
        self,
        origin: Origin,
        text: str,
        files: Sequence[dict[str, Any]] = (),
        *,
        imagine: bool = False,
        options: ImageChoice | None = None,
        only_existing: bool = False,
    ) -> None:
        """Run one turn and post its outcome (answer, error, or nothing for a duplicate).

        Turns of one thread run one at a time in the order their tasks started (the lock is
        the first await), so answers are posted in the order members wrote. With
        `only_existing`, a thread that is not a bot conversation yet is left alone.
        """
        async with self._threads.hold(origin.thread.key):
            if only_existing and not await self.is_conversation(origin):
                return
            await self._run(origin, text, files, imagine=imagine, options=options)

    async def _run(
        self,
        origin: Origin,
        text: str,
        files: Sequence[dict[str, Any]],
        *,
        imagine: bool,
        options: ImageChoice | None,
    ) -> None:
        """The top of the turn task: whatever happens, the member gets a reply, never a
        placeholder left saying "Thinking…"."""
        place = self.place(origin)
        progress: Progress | None = None
        try:
            if await self.owned_by_other(origin):
                return
            # Another replica already took this event: the answer comes from there, so no
            # placeholder here for the whole of its turn (core drops the duplicate below).
            taken = await self._service.turn_of(origin.key) is not None
            progress = Progress(
                self._client, place, drawing=imagine, every=self._progress_every, quiet=taken
            )
            async with progress:
                outcome = await self._turn(origin, text, files, imagine=imagine, options=options)
            await self._show(origin, place, progress, outcome)
        except asyncio.CancelledError:
            # Shut down mid-turn: no answer will come, so say so where "Thinking…" was.
            if progress is not None and progress.showing:
                await self.renderer.say(place, texts.RESTARTED, replace=progress.take_placeholder())
            raise
        except Exception:  # the one catch-all: an error nothing below foresaw still gets a reply
            log.exception("turn failed unexpectedly", extra={"event_key": origin.key})
            if progress is None or not progress.quiet:
                replace = progress.take_placeholder() if progress is not None else None
                await self.renderer.say(place, shared_texts.UNEXPECTED, replace=replace)

    async def _show(
        self, origin: Origin, place: Place, progress: Progress, outcome: Reply | BotError | None
    ) -> None:
        if outcome is None:
            log.info("duplicate event dropped", extra={"event_key": origin.key})
            await progress.clear()
        elif isinstance(outcome, BotError):
            log.info(
                "turn ended in an error",
                extra={"event_key": origin.key, "error": type(outcome).__name__},
            )
            text_out = shared_texts.describe(outcome, COMMANDS)
            if progress.quiet:
                return  # the replica that took the event tells the member
            if isinstance(outcome, NotThreadOwner):
                await progress.clear()
                await self.renderer.private(place, text_out)
            else:
                await self.renderer.say(place, text_out, replace=progress.take_placeholder())
        else:
            await self.renderer.answer(place, outcome, progress.take_placeholder())

    async def _turn(
        self,
        origin: Origin,
        text: str,
        files: Sequence[dict[str, Any]],
        *,
        imagine: bool,
        options: ImageChoice | None,
    ) -> Reply | BotError | None:
        try:
            user = await self._members.chat_user(
                origin.user_team, origin.user_id, origin.enterprise_id
            )
            images = await self._files.images(files)
            message = IncomingMessage(origin.key, user, origin.thread, text, images)
            if imagine:
                return await self._service.imagine(message, options)
            return await self._service.ask(message)
        except BotError as exc:
            return exc


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _REMEMBERED:
        cache.popitem(last=False)

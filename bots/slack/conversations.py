"""A member's message as a recorded turn in its thread, or a clear refusal at once."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from bots import texts as shared_texts
from bots.slack.progress import WEB_API_ERRORS, Place
from bots.slack.render import Renderer
from bots.slack.routes import Route, dump_files
from bots.slack.tenant import Tenant
from bots.slack.texts import COMMANDS
from bots.slack.translate import Origin
from bots.slack.workspaces import Workspaces
from core.conversation.locks import KeyedLocks
from core.conversation.service import ConversationService
from core.errors import BotError, InputRejected, NotThreadOwner, SlowDown
from core.models import ImageChoice, Redo, TurnKind, TurnRequest

log = logging.getLogger(__name__)

_REMEMBERED = 10_000


class Conversations:
    """Intake for the Slack listeners: a member's message becomes a recorded turn (before the
    event is acknowledged); the turn worker answers it through `SlackTurns`."""

    def __init__(
        self, service: ConversationService, workspaces: Workspaces, *, max_files: int
    ) -> None:
        self._service = service
        self.workspaces = workspaces
        self._max_files = max_files
        self._threads = KeyedLocks()
        self._assistant_threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._hinted: OrderedDict[tuple[str, str], None] = OrderedDict()

    def assistant_thread(self, channel: str, thread_ts: str) -> None:
        """Remember a thread of Slack's assistant surface (it gets a status line)."""
        _remember(self._assistant_threads, (channel, thread_ts), None)

    async def renderer(self, tenant: Tenant) -> Renderer | None:
        """What posts in the tenant's workspace (None once it uninstalled the app)."""
        workspace = await self.workspaces.find(tenant)
        if workspace is None:
            log.info("slack workspace not installed", extra={"team": str(tenant)})
            return None
        return workspace.renderer

    def place(self, origin: Origin) -> Place:
        """Where the answer to `origin` goes."""
        assistant = (origin.channel, origin.thread_ts) in self._assistant_threads
        return Place(origin.channel, origin.thread_ts, origin.user_id, assistant=assistant)

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
        """Record one turn, or answer at once why not (a refusal, another member's thread).

        Messages of one thread are recorded in the order their events arrived here. With
        `only_existing`, a thread that is not a bot conversation yet is left alone.
        """
        async with self._threads.hold(origin.thread.key):
            owner = await self._service.owner_of(origin.thread)
            if owner is None and only_existing:
                return
            if owner is not None and owner[0] != origin.plain_user().key:
                await self._hint(origin, owner[1])
                return
            images = [file for file in files if str(file.get("mimetype", "")).startswith("image/")]
            place = self.place(origin)
            route = _route(origin, place)
            request = TurnRequest(
                user=origin.plain_user(),
                thread=origin.thread,
                text=text,
                kind=TurnKind.IMAGINE if imagine else TurnKind.ASK,
                attachments=dump_files(images),
            )
            try:
                if len(images) > self._max_files:
                    raise InputRejected(InputRejected.TOO_MANY_IMAGES, limit=self._max_files)
                turn = await self._service.submit(
                    origin.key,
                    request,
                    route=route.dump(),
                    has_attachments=bool(images),
                    choice=options,
                )
                # The first question names the assistant thread in the member's history.
                first = turn is not None and owner is None and place.assistant
                if first and (renderer := await self.renderer(origin.tenant)):
                    await renderer.title(place, text)
            except NotThreadOwner as exc:
                await self._hint(origin, exc.owner_display)
            except SlowDown as exc:  # only they need to know, not the whole thread
                sentence = shared_texts.describe(exc, COMMANDS)
                if renderer := await self.renderer(origin.tenant):
                    await renderer.private(self.place(origin), sentence)
            except BotError as exc:
                log.info(
                    "turn refused", extra={"event_key": origin.key, "error": type(exc).__name__}
                )
                await self._tell(origin, place, shared_texts.describe(exc, COMMANDS))

    async def again(
        self,
        origin: Origin,
        redo: Redo,
        turn_id: str,
        *,
        size: str | None = None,
        instruction: str = "",
    ) -> None:
        """Record a click (or the edit form) on an earlier turn as a turn of its thread, or
        tell the member privately why not (someone else's turn, too fast, too old)."""
        async with self._threads.hold(origin.thread.key):
            place = self.place(origin)
            route = _route(origin, place)
            try:
                await self._service.again(
                    origin.key,
                    origin.plain_user(),
                    turn_id,
                    redo,
                    route=route.dump(),
                    thread=origin.thread,
                    size=size,
                    instruction=instruction,
                )
            except NotThreadOwner as exc:  # every click of theirs is told why nothing happens
                await self._hint(origin, exc.owner_display, once=False)
            except BotError as exc:  # too fast, too old, empty: only they need to know
                if renderer := await self.renderer(origin.tenant):
                    await renderer.private(place, shared_texts.describe(exc, COMMANDS))

    async def _hint(self, origin: Origin, owner: str | None, *, once: bool = True) -> None:
        """Tell a non-owner, privately (once per thread for messages), how to start their own."""
        seen = (origin.thread.key, origin.user_id)
        if once and seen in self._hinted:
            return
        _remember(self._hinted, seen, None)
        hint = shared_texts.describe(NotThreadOwner(owner), COMMANDS)
        if renderer := await self.renderer(origin.tenant):
            await renderer.private(self.place(origin), hint)

    async def _tell(self, origin: Origin, place: Place, sentence: str) -> None:
        try:
            if renderer := await self.renderer(origin.tenant):
                await renderer.say(place, sentence)
        except WEB_API_ERRORS as exc:
            log.error("refusal not posted", extra={"channel": place.channel, "error": repr(exc)})


def _route(origin: Origin, place: Place) -> Route:
    """Where the turn of `origin` answers, kept with it in the ledger."""
    return Route(
        channel=origin.channel,
        thread_ts=origin.thread_ts,
        user_id=origin.user_id,
        user_team=origin.user_team,
        team_id=origin.team_id,
        enterprise_id=origin.enterprise_id,
        assistant=place.assistant,
        org_install=origin.org_install,
    )


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _REMEMBERED:
        cache.popitem(last=False)

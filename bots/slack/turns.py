"""Slack's side of a durable turn: the member and their files, a placeholder, the answer.

Everything works from the turn's stored route (channel, thread, member, team), so a turn
recovered after a restart, or delivered on a retry, answers in the same thread and replaces
the same "Thinking…" placeholder; `Sent` tells what is already posted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots import texts as shared_texts
from bots.slack import texts
from bots.slack.files import FileFetcher
from bots.slack.members import Members
from bots.slack.progress import Progress, api_error
from bots.slack.render import Renderer
from bots.slack.routes import Route, Sent, load_files
from bots.slack.texts import COMMANDS
from core.errors import BotError, NotThreadOwner, Undeliverable
from core.models import Prepared, Reply, Turn, TurnKind, TurnRequest
from core.ports import Posted

log = logging.getLogger(__name__)

# Web API errors no retry will cure: the bot cannot post there any more.
_GONE_FOR_GOOD = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "account_inactive", "invalid_auth"}
)


class SlackTurns:
    """core.ports.TurnChannel for Slack."""

    def __init__(
        self,
        client: AsyncWebClient,
        members: Members,
        files: FileFetcher,
        renderer: Renderer,
        *,
        progress_every: float,
    ) -> None:
        self._client = client
        self._members = members
        self._files = files
        self._renderer = renderer
        self._progress_every = progress_every

    async def prepare(self, turn: Turn, request: TurnRequest) -> Prepared:
        """The member with their names and admin flag now, and their image files, fetched."""
        route = Route.load(turn.route)
        user = await self._members.chat_user(route.user_team, route.user_id, route.enterprise_id)
        images = await self._files.images(load_files(request.attachments))
        return Prepared(user, images)

    async def waiting(
        self, turn: Turn, request: TurnRequest, posted: Posted, place: int | None
    ) -> None:
        """The placeholder (or status line) says where the turn is in line; `working` takes the
        placeholder over when the turn starts."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        text = shared_texts.in_line(place)
        if route.place.assistant:
            await self._renderer.status(route.place, text)
        elif sent.placeholder is not None:
            # Still waiting? (a worker elsewhere may have started it: then its answer owns
            # the placeholder, and a late place in line must not land over it)
            if await posted.save_while_waiting(sent.dump()):
                await self._renderer.edit(route.place, sent.placeholder, text)
        else:
            sent.placeholder = await self._renderer.placeholder(route.place, text)
            if not await posted.save_while_waiting(sent.dump()):
                # It started meanwhile, and its worker shows its own placeholder.
                await self._renderer.delete(route.place, sent.placeholder)

    @contextlib.asynccontextmanager
    async def working(
        self, turn: Turn, request: TurnRequest, posted: Posted
    ) -> AsyncIterator[_Working]:
        """A "Thinking…" placeholder (or the assistant status line) counting the seconds."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        progress = Progress(
            self._client,
            route.place,
            drawing=request.kind is TurnKind.IMAGINE,
            every=self._progress_every,
            placeholder_ts=sent.placeholder,
        )
        async with progress:
            if progress.placeholder_ts != sent.placeholder:
                sent.placeholder = progress.placeholder_ts
                await posted.save(sent.dump())
            yield _Working(self, route, posted)

    async def deliver(
        self, turn: Turn, request: TurnRequest, outcome: Reply | BotError, posted: Posted
    ) -> None:
        """The answer in the thread, in place of the placeholder; or the error sentence
        (privately, for a member writing in another member's thread)."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        place = route.place

        async def save() -> None:
            await posted.save(sent.dump())

        try:
            if isinstance(outcome, Reply):
                await self._renderer.answer(place, outcome, sent, save)
                return
            sentence = shared_texts.describe(outcome, COMMANDS)
            if isinstance(outcome, NotThreadOwner):
                if sent.placeholder is not None:
                    await self._renderer.delete(place, sent.placeholder)
                await self._renderer.private(place, sentence)
                return
            await self._renderer.say(place, sentence, replace=sent.placeholder)
        except SlackApiError as exc:
            code = api_error(exc)
            if code in _GONE_FOR_GOOD:
                raise Undeliverable(str(code)) from exc
            raise

    async def give_up(self, turn: Turn, request: TurnRequest, posted: Posted) -> None:
        """A short note in the thread that the answer could not be posted."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        await self._renderer.say(route.place, texts.UNDELIVERABLE, replace=sent.placeholder)


class _Working:
    """core.ports.Working: says once, in the placeholder, that the answer will come."""

    def __init__(self, turns: SlackTurns, route: Route, posted: Posted) -> None:
        self._turns = turns
        self._route = route
        self._posted = posted

    async def slow(self) -> None:
        sent = Sent.load(self._posted.value)
        if sent.slow:
            return
        try:
            await self._turns._renderer.say(self._route.place, texts.SLOW)
        except Exception as exc:  # only a notice: the answer still comes
            log.info("slow notice not shown", extra={"error": repr(exc)})
            return
        sent.slow = True
        await self._posted.save(sent.dump())

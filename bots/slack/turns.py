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

from bots import texts as shared_texts
from bots.slack import buttons, texts
from bots.slack.progress import Progress, api_error
from bots.slack.render import Renderer
from bots.slack.routes import Route, Sent, load_files
from bots.slack.texts import COMMANDS
from bots.slack.workspaces import Workspace, Workspaces
from core.errors import BotError, NotThreadOwner, Undeliverable
from core.models import Prepared, Reply, Turn, TurnKind, TurnRequest
from core.ports import Posted

log = logging.getLogger(__name__)

# Web API errors no retry will cure: the bot cannot post there any more.
_GONE_FOR_GOOD = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "account_inactive",
        "invalid_auth",
        "token_revoked",
    }
)


class SlackTurns:
    """core.ports.TurnChannel for Slack."""

    def __init__(self, workspaces: Workspaces, *, progress_every: float) -> None:
        self._workspaces = workspaces
        self._progress_every = progress_every

    async def _workspace(self, route: Route) -> Workspace:
        """The turn's workspace with the token in force now; Undeliverable once it has
        uninstalled the app (nothing is posted with a dead token, nothing retried)."""
        workspace = await self._workspaces.find(route.tenant)
        if workspace is None:
            raise Undeliverable(f"slack workspace {route.tenant} is not installed")
        return workspace

    async def prepare(self, turn: Turn, request: TurnRequest) -> Prepared:
        """The member with their names and admin flag now, and their image files, fetched."""
        route = Route.load(turn.route)
        workspace = await self._workspace(route)
        user = await workspace.members.chat_user(
            route.user_team, route.user_id, route.enterprise_id
        )
        images = await workspace.files.images(load_files(request.attachments))
        return Prepared(user, images)

    async def waiting(
        self, turn: Turn, request: TurnRequest, posted: Posted, place: int | None
    ) -> None:
        """The placeholder (or status line) says where the turn is in line; `working` takes the
        placeholder over when the turn starts."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        renderer = (await self._workspace(route)).renderer
        text = shared_texts.in_line(place)
        if route.place.assistant:
            await renderer.status(route.place, text)
        elif sent.placeholder is not None:
            # Still waiting? (a worker elsewhere may have started it: then its answer owns
            # the placeholder, and a late place in line must not land over it)
            if await posted.save_while_waiting(sent.dump()):
                await renderer.edit(route.place, sent.placeholder, text)
        else:
            # Said before it is posted: a crash between posting it and keeping its ts would
            # leave it up, and the run then finds it (and answers in it) only when told to look.
            sent.pending = True
            if not await posted.save_while_waiting(sent.dump()):
                return  # it started meanwhile
            sent.placeholder = await renderer.placeholder(route.place, text, turn.turn_id)
            sent.pending = False
            if not await posted.save_while_waiting(sent.dump()):
                # It started meanwhile, and its worker shows its own placeholder.
                await renderer.delete(route.place, sent.placeholder)

    @contextlib.asynccontextmanager
    async def working(
        self, turn: Turn, request: TurnRequest, posted: Posted
    ) -> AsyncIterator[_Working]:
        """A "Thinking…" placeholder (or the assistant status line) counting the seconds."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        workspace = await self._workspace(route)
        placeholder = sent.placeholder
        if placeholder is None and (turn.runs > 1 or sent.pending) and not route.assistant:
            # An earlier run, or the note of its place in line, may have died between posting
            # its placeholder and keeping it.
            placeholder = await workspace.renderer.find_placeholder(route.place, turn.turn_id)
            sent.pending = False
        progress = Progress(
            workspace.client,
            route.place,
            drawing=request.kind is TurnKind.IMAGINE,
            every=self._progress_every,
            placeholder_ts=placeholder,
            turn_id=turn.turn_id,
        )
        async with progress:
            if progress.placeholder_ts != sent.placeholder:
                sent.placeholder = progress.placeholder_ts
                posted.save_soon(sent.dump())  # written while Samsar is called
            yield _Working(workspace.renderer, route, posted)

    async def deliver(
        self, turn: Turn, request: TurnRequest, outcome: Reply | BotError, posted: Posted
    ) -> None:
        """The answer in the thread, in place of the placeholder; or the error sentence
        (privately, for a member writing in another member's thread)."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        place = route.place
        renderer = (await self._workspace(route)).renderer

        async def save() -> None:
            await posted.save(sent.dump())

        try:
            if isinstance(outcome, Reply):
                await renderer.answer(place, outcome, sent, save, turn_id=turn.turn_id)
                if place.assistant:  # done: no status line left saying it works
                    await renderer.clear_status(place)
                return
            sentence = shared_texts.describe(outcome, COMMANDS)
            if isinstance(outcome, NotThreadOwner):
                if sent.placeholder is not None:
                    await renderer.delete(place, sent.placeholder)
                await renderer.private(place, sentence)
                return
            actions = buttons.failure_actions(turn.turn_id, outcome)
            await renderer.say(place, sentence, replace=sent.placeholder, actions=actions)
        except SlackApiError as exc:
            code = api_error(exc)
            if code in _GONE_FOR_GOOD:
                raise Undeliverable(str(code)) from exc
            raise

    async def give_up(self, turn: Turn, request: TurnRequest, posted: Posted) -> None:
        """A short note in the thread that the answer could not be posted."""
        route, sent = Route.load(turn.route), Sent.load(posted.value)
        renderer = (await self._workspace(route)).renderer
        await renderer.say(route.place, texts.UNDELIVERABLE, replace=sent.placeholder)


class _Working:
    """core.ports.Working: says once, in the placeholder, that the answer will come."""

    def __init__(self, renderer: Renderer, route: Route, posted: Posted) -> None:
        self._renderer = renderer
        self._route = route
        self._posted = posted

    async def slow(self) -> None:
        sent = Sent.load(self._posted.value)
        if sent.slow:
            return
        try:
            await self._renderer.say(self._route.place, texts.SLOW)
        except Exception as exc:  # only a notice: the answer still comes
            log.info("slow notice not shown", extra={"error": repr(exc)})
            return
        sent.slow = True
        await self._posted.save(sent.dump())

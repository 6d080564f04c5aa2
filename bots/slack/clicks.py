"""Clicks on our buttons (`block_actions`) and the edit form (`view_submission`).

A click is recorded as a turn of its thread before the acknowledgement, keyed by its
trigger (a redelivered envelope is the same turn); a form by its view. Edit… opens the form
(`views.open` with the click's trigger). 👍/👎 are kept with the turn. Link buttons (Buy
credits) open their URL in the member's browser; their click needs only the ack.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bots import texts as shared_texts
from bots.slack import buttons
from bots.slack.conversations import Conversations
from bots.slack.progress import WEB_API_ERRORS, Place, error_code
from bots.slack.texts import COMMANDS, FORM_GONE, THANKS_FEEDBACK
from bots.slack.translate import Origin, enterprise_of, org_install
from core.conversation.service import ConversationService
from core.errors import BotError, InputRejected, NotThreadOwner
from core.models import Redo

log = logging.getLogger(__name__)

Body = dict[str, Any]


class Clicks:
    """What a member's click or form does."""

    def __init__(self, service: ConversationService, conversations: Conversations) -> None:
        self._service = service
        self._conversations = conversations

    async def guarded(self, work: Callable[[Body], Awaitable[None]], body: Body) -> None:
        """Run a click's work; a failure nothing foresaw is logged and the member told, never
        left silent (the click is acknowledged either way)."""
        try:
            await work(body)
        except Exception:
            log.exception("click failed", extra={"type": body.get("type")})
            origin = _origin(body, "")
            if origin is not None and (
                renderer := await self._conversations.renderer(origin.tenant)
            ):
                place = Place(origin.channel, origin.thread_ts, origin.user_id)
                await renderer.private(place, shared_texts.UNEXPECTED)

    async def action(self, body: Body) -> None:
        """A click on a picture's or a failure's button (or the size select)."""
        action = _first_action(body)
        clicked = buttons.clicked(action)
        origin = _origin(body, f"slack:action:{body.get('trigger_id')}")
        if clicked is None or origin is None:
            return
        if clicked.redo is Redo.EDIT:
            await self._open_form(body, origin, clicked.turn_id)
            return
        await self._conversations.again(origin, clicked.redo, clicked.turn_id, size=clicked.size)

    async def _open_form(self, body: Body, origin: Origin, turn_id: str) -> None:
        """The edit form, for the picture's own member (anyone else: the usual hint)."""
        earlier = await self._service.turn(turn_id)
        place = Place(origin.channel, origin.thread_ts, origin.user_id)
        renderer = await self._conversations.renderer(origin.tenant)
        if renderer is None:
            return
        problem: BotError | None = None
        if earlier is None or earlier.request is None:
            problem = InputRejected(InputRejected.GONE)
        elif earlier.user_key != origin.plain_user().key:
            problem = NotThreadOwner(earlier.request.user.display_name)
        if problem is not None:
            await renderer.private(place, shared_texts.describe(problem, COMMANDS))
            return
        workspace = await self._conversations.workspaces.find(origin.tenant)
        if workspace is None:
            return
        form = buttons.edit_form(turn_id, origin.channel, origin.thread_ts)
        try:
            await workspace.client.views_open(trigger_id=str(body["trigger_id"]), view=form)
        except WEB_API_ERRORS as exc:  # the trigger lives 3 s: a slow click finds it gone
            log.info("edit form not opened", extra={"error": error_code(exc)})
            await renderer.private(place, FORM_GONE)

    async def form(self, body: Body) -> None:
        """The edit form sent: its instruction edits the picture in its thread."""
        view = body.get("view")
        values = buttons.form_values(view) if isinstance(view, dict) else None
        if values is None or not isinstance(view, dict):
            return
        turn_id, channel, thread_ts, instruction = values
        origin = _origin(body, f"slack:form:{view.get('id')}", channel, thread_ts)
        if origin is None:
            return
        await self._conversations.again(origin, Redo.EDIT, turn_id, instruction=instruction)

    async def feedback(self, body: Body) -> None:
        """👍/👎 under an answer: kept with the turn when the clicker is its member."""
        action = _first_action(body)
        value = "up" if str(action.get("action_id")).endswith("_up") else "down"
        origin = _origin(body, "")
        turn_id = str(action.get("value") or "")
        if origin is None or not turn_id:
            return
        kept = await self._service.feedback(origin.plain_user(), turn_id, value)
        if kept and (renderer := await self._conversations.renderer(origin.tenant)):
            place = Place(origin.channel, origin.thread_ts, origin.user_id)
            await renderer.private(place, THANKS_FEEDBACK)


def _first_action(body: Body) -> dict[str, Any]:
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else {}
    return first if isinstance(first, dict) else {}


def _origin(
    body: Body, key: str, channel: str | None = None, thread_ts: str | None = None
) -> Origin | None:
    """Who clicked, in which thread (the clicked message's, or the form's)."""
    team, user = body.get("team") or {}, body.get("user") or {}
    container, message = body.get("container") or {}, body.get("message") or {}
    channel = channel or container.get("channel_id") or (body.get("channel") or {}).get("id")
    thread_ts = thread_ts or message.get("thread_ts") or container.get("thread_ts")
    thread_ts = thread_ts or message.get("ts") or container.get("message_ts")
    if not (team.get("id") and user.get("id") and channel and thread_ts):
        return None
    enterprise = body.get("enterprise")
    return Origin(
        team_id=str(team["id"]),
        enterprise_id=enterprise_of({"enterprise_id": (enterprise or {}).get("id")}),
        user_team=str(user.get("team_id") or team["id"]),
        user_id=str(user["id"]),
        channel=str(channel),
        thread_ts=str(thread_ts),
        key=key,
        org_install=org_install(body),
    )

"""The fake's interactions: INTERACTION_CREATE payloads, the callback, `@original`, followups."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.e2e.discord import payloads as p
from tests.e2e.discord.fake_rules import (
    BODY,
    Body,
    Refusal,
    check_components,
    check_message,
    json_response,
)

if TYPE_CHECKING:
    from tests.e2e.discord.fake_channels import Stored
    from tests.e2e.discord.fake_discord import FakeDiscord

ACK_WINDOW = 3.0  # seconds Discord waits for the callback
DEFERRED, MESSAGE, DEFERRED_UPDATE, UPDATE, SUGGESTIONS, MODAL = 5, 4, 6, 7, 8, 9
COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# The callback types Discord accepts for each interaction type.
ANSWERS = {
    COMMAND: {MESSAGE, DEFERRED, MODAL},
    COMPONENT: {MESSAGE, DEFERRED, DEFERRED_UPDATE, UPDATE, MODAL},
    MODAL_SUBMIT: {MESSAGE, DEFERRED, DEFERRED_UPDATE, UPDATE},
    AUTOCOMPLETE: {SUGGESTIONS},
}
UPLOAD_LIMIT = 10 * 1024 * 1024


@dataclass
class InteractionState:
    """What the fake knows of one interaction and its token."""

    interaction_id: int
    token: str
    channel_id: int
    payload: dict[str, Any]
    upload_limit: int
    kind: int = COMMAND  # the interaction type, as Discord itself knows it
    dispatched_at: float | None = None
    acknowledged_at: float | None = None
    ephemeral: bool = False
    expired: bool = False
    original: Stored | None = None
    answer_type: int | None = None  # the callback type the bot answered with
    suggestions: list[dict[str, Any]] | None = None  # an autocomplete's answered choices
    modal: dict[str, Any] | None = None  # the form the bot opened in answer


class InteractionRoutes:
    """Mixed into FakeDiscord: interaction state and the routes that use its token."""

    def __init__(self) -> None:
        self.interactions: dict[int, InteractionState] = {}

    def interaction_routes(self: FakeDiscord) -> list[tuple[str, str, Any]]:
        """The REST routes of interactions and their webhooks."""
        base = "/webhooks/{app_id}/{token}"
        return [
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("PATCH", base + "/messages/@original", self._edit_original),
            ("GET", base + "/messages/@original", self._get_original),
            ("DELETE", base + "/messages/@original", self._delete_original),
            ("POST", base, self._followup),
        ]

    def new_interaction(
        self: FakeDiscord,
        name: str,
        options: list[dict[str, Any]],
        *,
        who: dict[str, Any],
        channel_id: int | None = None,
        permissions: int = p.MEMBER_PERMISSIONS,
        upload_limit: int = UPLOAD_LIMIT,
        resolved: dict[str, Any] | None = None,
        kind: int = COMMAND,
        data: dict[str, Any] | None = None,
        user_install: bool = False,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload (in a guild channel or a DM): an application command
        (or its autocomplete, `kind`), or with `data` given, a component click or form."""
        interaction_id = p.snowflake()
        token = f"itoken-{interaction_id}"
        channel_id = channel_id or self.channel_id
        channel = self.channels[channel_id]
        in_guild = "guild_id" in channel
        guild_id = str(channel.get("guild_id", self.guild_id))
        if data is None:
            data = {
                "id": str(p.snowflake()),
                "name": name,
                "type": p.CHAT_INPUT,
                "options": options,
            }
        if resolved:
            data["resolved"] = resolved
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.app_id),
            "type": kind,
            "data": data,
            "channel_id": str(channel_id),
            "channel": channel,
            "token": token,
            "version": 1,
            "app_permissions": str(p.MEMBER_PERMISSIONS),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": upload_limit,
            # A member's own install (`user_install`): the bot is not in the server.
            "authorizing_integration_owners": (
                {"1": str(who["id"])} if user_install else {"0": guild_id}
            ),
        }
        if in_guild and kind in (COMMAND, AUTOCOMPLETE):
            data["guild_id"] = guild_id
        if in_guild:
            payload |= {
                "guild_id": guild_id,
                "guild_locale": "en-US",
                "member": p.member(who, permissions=permissions),
                "context": 0,
            }
        else:
            payload |= {"user": who, "context": 1}
        self.interactions[interaction_id] = InteractionState(
            interaction_id, token, channel_id, payload, upload_limit, kind
        )
        return payload

    async def dispatch_interaction(self: FakeDiscord, payload: dict[str, Any]) -> int:
        """Send INTERACTION_CREATE (again, for a replay); the 3-s window starts at the first."""
        state = self.interactions[int(payload["id"])]
        if state.dispatched_at is None:
            state.dispatched_at = time.monotonic()
        return await self.gateway.dispatch("INTERACTION_CREATE", payload)

    def click(
        self: FakeDiscord,
        message: Stored,
        custom_id: str,
        *,
        who: dict[str, Any],
        values: list[str] | None = None,
    ) -> dict[str, Any]:
        """A click on a component of a message the bot posted (a button; with `values`, a
        select), as INTERACTION_CREATE brings it; Discord refuses ids the message lacks."""
        items = [i for row in message.payload["components"] for i in row["components"]]
        [item] = [i for i in items if i.get("custom_id") == custom_id]
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": item["type"]}
        if values is not None:
            data["values"] = values
        channel_id = int(message.payload["channel_id"])
        payload = self.new_interaction(
            "", [], who=who, channel_id=channel_id, kind=COMPONENT, data=data
        )
        payload["message"] = message.payload
        return payload

    def submit_form(
        self: FakeDiscord, opened: dict[str, Any], values: dict[str, str], *, who: dict[str, Any]
    ) -> dict[str, Any]:
        """The form an interaction's answer opened, sent with `values` by input custom id."""
        form = self.interaction(opened).modal
        assert form is not None, "no form was opened"
        rows = [
            {
                "type": 1,
                "components": [
                    {"type": 4, "custom_id": item["custom_id"], "value": values[item["custom_id"]]}
                    for item in row["components"]
                ],
            }
            for row in form["components"]
        ]
        data = {"custom_id": form["custom_id"], "components": rows}
        channel_id = int(opened["channel_id"])
        return self.new_interaction(
            "", [], who=who, channel_id=channel_id, kind=MODAL_SUBMIT, data=data
        )

    def interaction(self, payload: dict[str, Any]) -> InteractionState:
        """The fake's state of an interaction."""
        return self.interactions[int(payload["id"])]

    def expire(self, payload: dict[str, Any]) -> None:
        """Let the interaction token run out (what 15 minutes would do)."""
        self.interactions[int(payload["id"])].expired = True

    # --- routes -------------------------------------------------------------------------

    async def _callback(self: FakeDiscord, request: web.Request) -> web.StreamResponse:
        state = self.interactions.get(int(request.match_info["interaction_id"]))
        if state is None or state.token != request.match_info["token"]:
            raise Refusal(404, 10062, "Unknown interaction")
        if state.acknowledged_at is not None:
            raise Refusal(400, 40060, "Interaction has already been acknowledged.")
        now = time.monotonic()
        if state.dispatched_at is None or now - state.dispatched_at > ACK_WINDOW:
            raise Refusal(404, 10062, "Unknown interaction")
        body: Body = request[BODY]
        kind = body.json.get("type")
        data = body.json.get("data") or {}
        flags = int(data.get("flags") or 0)
        if kind not in ANSWERS.get(state.kind, set()):
            raise Refusal(400, 50035, "Invalid Form Body")  # e.g. a message to an autocomplete
        if kind == MODAL:
            title, custom = data.get("title"), data.get("custom_id")
            if not isinstance(title, str) or not 1 <= len(title) <= 45:
                raise Refusal(400, 50035, "Invalid Form Body")
            if not isinstance(custom, str) or not 1 <= len(custom) <= 100:
                raise Refusal(400, 50035, "Invalid Form Body")
            check_components(data.get("components"), form=True)
            state.acknowledged_at, state.answer_type, state.modal = now, kind, data
            return self._acknowledged(request, state)
        if kind == DEFERRED_UPDATE:  # a click acknowledged: nothing is posted
            state.acknowledged_at, state.answer_type = now, kind
            return self._acknowledged(request, state)
        if kind == SUGGESTIONS:
            choices = data.get("choices")
            if not isinstance(choices, list) or len(choices) > 25:
                raise Refusal(400, 50035, "Invalid Form Body")
            state.acknowledged_at, state.answer_type, state.suggestions = now, kind, choices
            return web.Response(status=204)
        state.answer_type = kind
        if kind == MESSAGE:
            check_message(Body(data, body.files), upload_limit=state.upload_limit, creating=True)
        state.acknowledged_at = now
        state.ephemeral = bool(flags & p.EPHEMERAL)
        loading = p.LOADING if kind == DEFERRED else 0
        state.original = self.store_message(
            state.channel_id,
            Body(data if kind == MESSAGE else {}, body.files),
            flags=(flags & p.EPHEMERAL) | loading,
            webhook_id=self.app_id,
            kind=20,
        )
        if request.query.get("with_response") not in ("1", "true"):
            return web.Response(status=204)
        answer = {
            "interaction": {
                "id": str(state.interaction_id),
                "type": 2,
                "response_message_id": state.original.payload["id"],
                "response_message_loading": kind == DEFERRED,
                "response_message_ephemeral": state.ephemeral,
            },
            "resource": {"type": kind, "message": state.original.payload},
        }
        return json_response(answer)

    @staticmethod
    def _acknowledged(request: web.Request, state: InteractionState) -> web.Response:
        """The answer to a callback that posts no message (a form opened, a click taken)."""
        if request.query.get("with_response") not in ("1", "true"):
            return web.Response(status=204)
        interaction = {"id": str(state.interaction_id), "type": state.kind}
        return json_response({"interaction": interaction})

    def _by_token(self, request: web.Request) -> InteractionState:
        if request.match_info["app_id"] != str(self.app_id):  # type: ignore[attr-defined]
            raise Refusal(404, 10015, "Unknown Webhook")
        token = request.match_info["token"]
        state = next((s for s in self.interactions.values() if s.token == token), None)
        if state is None or state.expired:
            raise Refusal(401, 50027, "Invalid Webhook Token")
        return state

    def _original(self, request: web.Request) -> InteractionState:
        state = self._by_token(request)
        if state.original is None:
            raise Refusal(404, 10008, "Unknown Message")
        return state

    async def _edit_original(self: FakeDiscord, request: web.Request) -> web.Response:
        state = self._original(request)
        body: Body = request[BODY]
        check_message(body, upload_limit=state.upload_limit, creating=False)
        assert state.original is not None
        replaced = self.store_message(state.channel_id, body, webhook_id=self.app_id, kind=20)
        # An edit keeps the message: move the new content, files and flags onto the original.
        self.messages[state.channel_id].remove(replaced)
        original = state.original
        keep_id = original.payload["id"]
        if "content" in body.json:
            original.payload["content"] = body.json["content"] or ""
        if "attachments" in body.json:
            original.payload["attachments"] = replaced.payload["attachments"]
            original.files = replaced.files
        if "components" in body.json:
            original.payload["components"] = body.json["components"]
        original.payload["flags"] = int(original.payload["flags"]) & ~p.LOADING
        original.payload["allowed_mentions"] = body.json.get("allowed_mentions")
        original.payload["id"] = keep_id
        original.payload["edited_timestamp"] = p.now_iso()
        return json_response(original.payload)

    async def _get_original(self: FakeDiscord, request: web.Request) -> web.Response:
        state = self._original(request)
        assert state.original is not None
        return json_response(state.original.payload)

    async def _delete_original(self: FakeDiscord, request: web.Request) -> web.Response:
        state = self._original(request)
        assert state.original is not None
        self.messages[state.channel_id].remove(state.original)
        state.original = None
        return web.Response(status=204)

    async def _followup(self: FakeDiscord, request: web.Request) -> web.StreamResponse:
        state = self._by_token(request)
        if state.acknowledged_at is None:
            raise Refusal(400, 40060, "Interaction has not been acknowledged.")
        body: Body = request[BODY]
        check_message(body, upload_limit=state.upload_limit, creating=True)
        flags = int(body.json.get("flags") or 0) & p.EPHEMERAL
        stored = self.store_message(
            state.channel_id, body, flags=flags, webhook_id=self.app_id, kind=20
        )
        if request.query.get("wait") not in ("1", "true", "True"):
            return web.Response(status=204)
        return json_response(stored.payload)

"""The front door: every request from Slack is checked before bolt reads it.

Over HTTP: unsigned or stale → 401 before anything is parsed; signed but unreadable (not
UTF-8, not JSON or a form, nested too deep, not an object) → 400; signed and readable but
off-shape (ids, timestamps, another app's id, see `shapes`) or of a kind the app does not use
→ 200 and ignored, so Slack does not send it again. Over Socket Mode the same checks decide
between handing the envelope to bolt and acknowledging it unused. Garbage costs one WARNING
line (never a traceback, never the body), within a budget so it cannot flood the log; it is
never downloaded, recorded or billed. A 5xx is left only for the bot's own trouble (the
database down while a turn is recorded), which Slack's retry may cure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bots.log_budget import LogBudget
from bots.slack import shapes

log = logging.getLogger(__name__)

MAX_AGE = 5 * 60  # seconds: an older signed request may be a replay
_TIMESTAMP_DIGITS = 12
_FORM = "application/x-www-form-urlencoded"
Headers = dict[str, str | Sequence[str]]
_JSON = "application/json"


class Refused(Exception):
    """The request cannot be used; `status` is the HTTP answer, `reason` goes to the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Admitted:
    """A readable request: its body as an object and what kind of request it is."""

    body: dict[str, Any]
    kind: str  # "event", "command", "interactive", "url_verification", "ssl_check", "unused"


class Intake:
    """Checks Slack's requests, then hands the good ones to the bolt app."""

    def __init__(
        self,
        app: AsyncApp,
        app_id: Callable[[], Awaitable[str | None]],
        signing_secret: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._app_id = app_id
        self._secret = signing_secret.encode() if signing_secret else None
        self._clock = clock
        self._budget = LogBudget(log)

    # --- HTTP -------------------------------------------------------------------------

    async def http(self, request: web.Request) -> web.Response:
        """Answer one POST to the request URL."""
        raw = await request.read()
        try:
            self._verify(raw, request.headers.get("X-Slack-Request-Timestamp"), request)
            admitted = _read(raw, request.content_type)
        except Refused as refused:
            self._budget.warn("slack request refused", _fields(refused, "http"))
            return web.Response(status=refused.status)
        headers: Headers = dict(request.headers)
        response = await self._dispatch(admitted, headers=headers, transport="http")
        if response is None:
            return web.Response(status=200)
        return _to_aiohttp(response)

    def _verify(self, raw: bytes, timestamp: str | None, request: web.Request) -> None:
        """Slack's v0 signature over the raw bytes (which may not even be UTF-8)."""
        signature = request.headers.get("X-Slack-Signature", "")
        if self._secret is None or not timestamp:
            raise Refused(401, "unsigned")
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _TIMESTAMP_DIGITS:
            raise Refused(401, "timestamp")
        if abs(self._clock() - int(timestamp)) > MAX_AGE:
            raise Refused(401, "stale")
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise Refused(401, "signature")

    # --- Socket Mode ------------------------------------------------------------------

    async def socket(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """Handle one Socket Mode envelope: acknowledged unless the bot's own work failed."""
        try:
            admitted = _from_envelope(req.type, req.payload)
        except Refused as refused:
            self._budget.warn("slack envelope refused", _fields(refused, "socket"))
            admitted = Admitted({}, "unused")
        headers: Headers = dict(build_headers(req) or {})
        response = await self._dispatch(admitted, headers=headers, transport="socket")
        if response is not None and response.status != 200:
            # The bot's own trouble (a listener failed): Slack sends the envelope again.
            log.info("slack envelope not acknowledged", extra={"status": response.status})
            return
        payload = _response_payload(response)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=payload)
        )

    async def unreadable_envelope(
        self, client: AsyncBaseSocketModeClient, envelope_id: object
    ) -> None:
        """Acknowledge an envelope whose payload is not even an object, and say so once."""
        refused = Refused(400, "payload not an object")
        self._budget.warn("slack envelope refused", _fields(refused, "socket"))
        if isinstance(envelope_id, str) and envelope_id:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))

    # --- both -------------------------------------------------------------------------

    async def _dispatch(
        self, admitted: Admitted, *, headers: Headers, transport: str
    ) -> BoltResponse | None:
        """Bolt's answer to an admitted request; None when it is acknowledged unused."""
        if admitted.kind == "unused":
            return None
        problem = await self._off_shape(admitted)
        if problem is not None:
            fields = {"transport": transport, "kind": admitted.kind, "field": problem}
            self._budget.warn("slack payload ignored", fields)
            return None
        if admitted.kind == "event" and not shapes.is_known_event(admitted.body):
            log.debug("slack event not used", extra={"transport": transport})
            return None
        try:
            # The body is handed over parsed: bolt would parse a form whose text merely
            # contains the word "payload" as an interactivity payload, and lose the command.
            # Its own signature check is for raw bodies; this one is already verified.
            bolt_request = AsyncBoltRequest(body=admitted.body, headers=headers, mode="socket_mode")
        except Exception as exc:  # bolt could not build its context: the payload is garbage
            fields = {"transport": transport, "kind": admitted.kind, "error": type(exc).__name__}
            self._budget.warn("slack payload ignored", fields)
            return None
        response = await self._app.async_dispatch(bolt_request)
        return None if response.status == 404 else response  # 404: no listener wanted it

    async def _off_shape(self, admitted: Admitted) -> str | None:
        if admitted.kind == "event":
            return shapes.event_callback(admitted.body, await self._app_id())
        if admitted.kind == "command":
            return shapes.slash_command(admitted.body, await self._app_id())
        if admitted.kind == "interactive":
            return shapes.interaction(admitted.body, await self._app_id())
        if admitted.kind == "url_verification":
            challenge = admitted.body.get("challenge")
            ok = isinstance(challenge, str) and 0 < len(challenge) <= 1000
            return None if ok else "challenge"
        return None


def _read(raw: bytes, content_type: str) -> Admitted:
    """The body of a signed HTTP request, as bolt would read it, or Refused(400)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "not utf-8") from None
    if content_type == _JSON:  # Slack labels every body; an unlabelled one is not Slack's
        return _from_json(text)
    if content_type == _FORM:
        return _from_form(text)
    raise Refused(400, "content type")


def _from_json(text: str) -> Admitted:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python can go
        raise Refused(400, "not json") from None
    if not isinstance(body, dict):
        raise Refused(400, "not an object")
    kind = body.get("type")
    if kind == "event_callback":
        return Admitted(body, "event")
    if kind == "url_verification":
        return Admitted(body, "url_verification")
    return Admitted(body, "unused")  # app_rate_limited and other notices


def _from_form(text: str) -> Admitted:
    try:
        form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
    except ValueError:
        raise Refused(400, "not a form") from None
    if "command" in form:
        return Admitted(form, "command")
    if "ssl_check" in form:
        return Admitted(form, "ssl_check")
    if "payload" in form:  # interactivity: a click, a form sent
        try:
            payload = json.loads(form["payload"])
        except (ValueError, RecursionError):
            raise Refused(400, "payload not json") from None
        return _interactive(payload)
    raise Refused(400, "unknown form")


def _interactive(payload: object) -> Admitted:
    """A click or a form sent (the kinds the app uses), else acknowledged unused."""
    if not isinstance(payload, dict):
        raise Refused(400, "payload not an object")
    if payload.get("type") in shapes.INTERACTIVE:
        return Admitted(payload, "interactive")
    return Admitted(payload, "unused")


def _from_envelope(kind: str, payload: object) -> Admitted:
    """A Socket Mode envelope's payload."""
    if not isinstance(payload, dict):
        raise Refused(400, "payload not an object")
    if kind == "events_api":
        if payload.get("type") == "event_callback":
            return Admitted(payload, "event")
        return Admitted(payload, "unused")
    if kind == "slash_commands":
        if not all(isinstance(value, str) for value in payload.values()):
            raise Refused(400, "command field not a string")
        return Admitted(payload, "command")
    if kind == "interactive":
        return _interactive(payload)
    return Admitted(payload, "unused")


def _response_payload(response: BoltResponse | None) -> dict[str, Any] | None:
    """What a Socket Mode ack carries back (a command's immediate answer), if anything."""
    if response is None or not response.body:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if content_type.startswith(_JSON):
        body = json.loads(response.body)
        return body if isinstance(body, dict) else None
    return {"text": response.body}


def _to_aiohttp(response: BoltResponse) -> web.Response:
    content_type = response.headers.get("content-type", ["text/plain"])[0].split(";")[0]
    return web.Response(status=response.status, body=response.body, content_type=content_type)


def _fields(refused: Refused, transport: str) -> dict[str, object]:
    return {"transport": transport, "status": refused.status, "reason": refused.reason}

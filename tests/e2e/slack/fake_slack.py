"""A wire-level fake Slack on 127.0.0.1: the Web API the bot uses, file upload and download
URLs, response_url, and a Socket Mode websocket. It records every request and refuses what
Slack refuses (bad token, unknown method, missing arguments)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from tests.e2e.slack import fake_web_api
from tests.e2e.slack.fake_records import (
    APP_ID,
    APP_TOKEN,
    BOT_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_SECRET,
    TEAM,
    ApiCall,
    FakeWorkspace,
    Message,
    Upload,
)
from tests.e2e.slack.fake_socket import SocketServer

_APP_TOKEN_METHODS = ("apps.connections.open",)


class FakeSlack:
    """The fake's state; tests read it and steer it (users, rate limits, socket envelopes)."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[ApiCall] = []
        self.messages: list[Message] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response_url
        self.views: list[dict[str, Any]] = []
        self.uploads: dict[str, Upload] = {}
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}  # member files to download
        self.downloads: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self.users: dict[str, dict[str, Any]] = {}
        self.not_member: set[str] = set()  # channels where the bot may not post
        self.rate_limits: dict[str, tuple[int, Callable[[dict[str, Any]], bool]]] = {}
        self.dropped: dict[str, int] = {}  # method → calls left to answer by hanging up
        self.failing: dict[str, tuple[int, str, Callable[[dict[str, Any]], bool]]] = {}
        self.stalled: set[str] = set()  # file ids whose download never finishes
        self.garbled: dict[str, int] = {}  # method → calls left to answer with an HTML page
        # Bot tokens and the workspace each speaks for; a revoked one is refused.
        self.tokens: dict[str, FakeWorkspace] = {BOT_TOKEN: FakeWorkspace(TEAM, "Fake Team")}
        self.revoked: set[str] = set()
        self.channel_teams: dict[str, str] = {}  # channel → its workspace (unlisted: TEAM's)
        self.current: FakeWorkspace | None = None  # whose token the call in hand carries
        # OAuth (distribution): who approves the next install, codes issued, refresh tokens.
        self.redirect_url = ""  # the app's Redirect URL, as configured on api.slack.com
        self.approver: FakeWorkspace | None = None
        self.denies = False
        self.rotating = False  # issue expiring tokens with refresh tokens (token rotation)
        self.token_lifetime = 43200  # seconds a rotating token lives (Slack: 12 hours)
        self.codes: dict[str, FakeWorkspace] = {}
        self.issued: list[str] = []  # bot tokens in the order they were issued
        # Interactivity: triggers of clicks (for views.open), forms opened, assistant threads.
        self.triggers: dict[str, float] = {}
        self.opened_views: list[dict[str, Any]] = []
        self.suggested: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.titles: dict[tuple[str, str], str] = {}
        self.refresh_tokens: dict[str, FakeWorkspace] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self._stopping = asyncio.Event()
        self.socket = SocketServer(self._changed)
        self._ids = itertools.count(1)
        self._change = asyncio.Event()

    # --- what tests set up ---------------------------------------------------------
    @property
    def api_url(self) -> str:
        """The base_url to give slack-sdk's web client."""
        return f"{self.url}/api/"

    def add_user(self, user_id: str, name: str, *, admin: bool = False, team: str = TEAM) -> None:
        """A member users.info knows (of another company's workspace when `team` differs, as
        with Slack Connect)."""
        self.users[user_id] = {
            "id": user_id,
            "team_id": team,
            "name": name.lower(),
            "real_name": name,
            "is_admin": admin,
            "is_owner": False,
            "profile": {"display_name": name, "real_name": name},
        }

    def add_file(self, name: str, data: bytes, mimetype: str = "image/png") -> dict[str, Any]:
        """A member's uploaded file, as a message event carries it."""
        file_id = f"F{next(self._ids):06d}"
        info = {
            "id": file_id,
            "name": name,
            "mimetype": mimetype,
            "size": len(data),
            "url_private": f"{self.url}/files-pri/{TEAM}-{file_id}/{name}",
            "url_private_download": f"{self.url}/files-pri/{TEAM}-{file_id}/download/{name}",
        }
        self.files[file_id] = (info, data)
        return info

    def rate_limit(
        self,
        method: str,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] = lambda params: True,
    ) -> None:
        """Answer the next `times` calls of `method` (whose arguments pass `when`) with 429
        and Retry-After: 1."""
        self.rate_limits[method] = (times, when)

    def fail(
        self,
        method: str,
        times: int,
        error: str = "internal_error",
        when: Callable[[dict[str, Any]], bool] = lambda params: True,
    ) -> None:
        """Answer the next `times` calls of `method` (whose arguments pass `when`) with
        `ok: false` and `error`, as Slack does when it has trouble of its own."""
        self.failing[method] = (times, error, when)

    def garble(self, method: str, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with an HTML error page labelled as
        JSON, as a proxy in front of Slack does when it has trouble."""
        self.garbled[method] = times

    def drop_connection(self, method: str, times: int = 1) -> None:
        """Hang up on the next `times` calls of `method` without answering."""
        self.dropped[method] = times

    def stall_download(self, file_id: str) -> None:
        """Let the download of a member file hang until the fake stops."""
        self.stalled.add(file_id)

    # --- what tests read -----------------------------------------------------------
    def calls_to(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method."""
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The bot's live messages in a thread, in posting order."""
        return [
            m
            for m in self.messages
            if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]

    async def wait_until(self, condition: Callable[[], object], within: float = 10.0) -> None:
        """Poll `condition` after each request until it holds; TimeoutError otherwise."""
        async with asyncio.timeout(within):
            while not condition():
                await self._change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def next_ts(self) -> str:
        """A fresh, increasing message timestamp."""
        n = next(self._ids)
        return f"{1_700_000_000 + n}.{n:06d}"

    def next_id(self, prefix: str) -> str:
        """A fresh object id."""
        return f"{prefix}{next(self._ids):06d}"

    def click(
        self, message: Message, action_id: str, *, user: str, option: str | None = None
    ) -> dict[str, Any]:
        """A `block_actions` payload: `user` clicks `action_id` in a message the bot posted (a
        select: picks the option whose value ends with `option`). Slack sends only what the
        message holds."""
        element = next(
            e
            for block in message.blocks
            if block.get("type") == "actions"
            for e in block["elements"]
            if e["action_id"] == action_id
        )
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": next(
                b.get("block_id")
                for b in message.blocks
                if b.get("type") == "actions" and element in b["elements"]
            ),
            "type": element["type"],
            "action_ts": self.next_ts(),
        }
        if element["type"] == "static_select":
            [chosen] = [o for o in element["options"] if o["value"].endswith(f"|{option}")]
            action["selected_option"] = chosen
        else:
            action["value"] = element.get("value")
        container = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        }
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        shown = {"ts": message.ts, "text": message.text, "blocks": message.blocks}
        if message.thread_ts:
            shown["thread_ts"] = message.thread_ts
        return {
            **self._interactive("block_actions", user),
            "container": container,
            "channel": {"id": message.channel, "name": "general"},
            "message": shown,
            "response_url": self.response_url(),
            "actions": [action],
        }

    def submit_view(self, view: dict[str, Any], text: str, *, user: str) -> dict[str, Any]:
        """A `view_submission` payload: `user` fills the form's one text input with `text`."""
        [block] = [b for b in view["blocks"] if b.get("type") == "input"]
        element = block["element"]
        values = {
            block["block_id"]: {element["action_id"]: {"type": "plain_text_input", "value": text}}
        }
        return {
            **self._interactive("view_submission", user),
            "view": {**view, "state": {"values": values}, "hash": "h", "team_id": TEAM},
        }

    def _interactive(self, kind: str, user: str) -> dict[str, Any]:
        """What every interactive payload of `kind` from `user` carries, a new trigger id."""
        return {
            "type": kind,
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "team_id": TEAM, "name": user.lower()},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "trigger_id": self._trigger(),
        }

    def _trigger(self) -> str:
        trigger = f"{next(self._ids)}.{int(time.time())}.fake{next(self._ids)}"
        self.triggers[trigger] = time.monotonic()
        return trigger

    def token_of(self, team_id: str) -> str:
        """The live bot token Slack issued last for `team_id` (or Grid org id)."""
        for token, workspace in reversed(list(self.tokens.items())):
            if token not in self.revoked and team_id in (
                workspace.team_id,
                workspace.enterprise_id,
            ):
                return token
        raise KeyError(team_id)

    def revoke(self, team_id: str) -> None:
        """The workspace uninstalled the app: every token of it stops working."""
        for token, workspace in self.tokens.items():
            if team_id in (workspace.team_id, workspace.enterprise_id):
                self.revoked.add(token)

    def _issue(self, workspace: FakeWorkspace) -> dict[str, Any]:
        """A new bot token for `workspace` (with a refresh token when rotation is on)."""
        token = f"xoxb-{workspace.team_id or workspace.enterprise_id}-{self.next_id('t')}"
        self.tokens[token] = workspace
        self.issued.append(token)
        issued: dict[str, Any] = {"access_token": token}
        if self.rotating:
            refresh = f"xoxe-1-{self.next_id('r')}"
            self.refresh_tokens[refresh] = workspace
            issued |= {"refresh_token": refresh, "expires_in": self.token_lifetime}
        return issued

    def _oauth_access(self, request: web.Request, params: dict[str, Any]) -> dict[str, Any]:
        """oauth.v2.access: the app's client id and secret by HTTP Basic (or in the form);
        a code once, or a refresh token (rotation)."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if client_id != CLIENT_ID:
            return {"ok": False, "error": "invalid_client_id"}
        if secret != CLIENT_SECRET:
            return {"ok": False, "error": "bad_client_secret"}
        if params.get("grant_type") == "refresh_token":
            workspace = self.refresh_tokens.pop(str(params.get("refresh_token")), None)
            if workspace is None:
                return {"ok": False, "error": "invalid_refresh_token"}
            return {"ok": True, "token_type": "bot", **self._issue(workspace)}
        workspace = self.codes.pop(str(params.get("code")), None)
        if workspace is None:
            return {"ok": False, "error": "invalid_code"}
        enterprise = (
            {"id": workspace.enterprise_id, "name": "Fake Org"} if workspace.enterprise_id else None
        )
        team = {"id": workspace.team_id, "name": workspace.name} if workspace.team_id else None
        return {
            "ok": True,
            "token_type": "bot",
            "scope": "chat:write,commands",
            "bot_user_id": workspace.bot_user,
            "app_id": APP_ID,
            "team": team,
            "enterprise": enterprise,
            "is_enterprise_install": workspace.org_install,
            "authed_user": {"id": "U0INSTALLER"},
            **self._issue(workspace),
        }

    async def _authorize(self, request: web.Request) -> web.Response:
        """Slack's approval page, as if the admin (`approver`) approved or cancelled."""
        query = dict(request.query)
        self.authorize_requests.append(query)
        if query.get("client_id") != CLIENT_ID or not query.get("scope"):
            return web.Response(status=400, text="Invalid client_id parameter")
        target = query.get("redirect_uri") or self.redirect_url
        state = query.get("state", "")
        if self.denies or self.approver is None:
            raise web.HTTPFound(f"{target}?error=access_denied&state={state}")
        code = self.next_id("code")
        self.codes[code] = self.approver
        raise web.HTTPFound(f"{target}?code={code}&state={state}")

    # --- the web server -------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        if method == "oauth.v2.access":
            body = self._oauth_access(request, params)
            self.calls.append(ApiCall(method, {"code": params.get("code")}, None, 200, body))
            self._changed()
            return web.json_response(body)
        if self.dropped.get(method):
            self.dropped[method] -= 1
            self.calls.append(ApiCall(method, params, None, 0, {}))
            self._changed()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client: the line is down
        if self.garbled.get(method):
            self.garbled[method] -= 1
            self.calls.append(ApiCall(method, params, None, 200, {}))
            self._changed()
            page = "<html><body>upstream trouble</body></html>"
            return web.Response(text=page, content_type="application/json")
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() or params.pop("token", None)
        status, body, headers = 200, {}, {}
        left, when = self.rate_limits.get(method, (0, lambda params: True))
        failing, error, fails = self.failing.get(method, (0, "", lambda params: True))
        if failing and fails(params):
            self.failing[method] = (failing - 1, error, fails)
            body = {"ok": False, "error": error}
        elif left and when(params):
            self.rate_limits[method] = (left - 1, when)
            status, body, headers = 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
        else:
            body = self._answer(method, params, token)
        self.calls.append(ApiCall(method, params, token, status, body))
        self._changed()
        return web.json_response(body, status=status, headers=headers)

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        handler = fake_web_api.METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        if not token:
            return {"ok": False, "error": "not_authed"}
        if method in _APP_TOKEN_METHODS:
            if token != APP_TOKEN:
                return {"ok": False, "error": "invalid_auth"}
        elif token in self.revoked:
            return {"ok": False, "error": "token_revoked"}
        elif token not in self.tokens:
            return {"ok": False, "error": "invalid_auth"}
        self.current = self.tokens.get(token)
        try:
            return {"ok": True, **handler(self, params)}
        except fake_web_api.SlackError as exc:
            return {"ok": False, "error": exc.code}

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        data = await request.read()
        if upload is None or upload.data is not None:
            return web.Response(status=404, text="not found")
        if len(data) != upload.length:
            return web.Response(status=400, text="length mismatch")
        upload.data = data
        self._changed()
        return web.Response(text=f"OK - {len(data)}")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.downloads.append((request.path, auth))
        file_id = request.match_info["file"].split("-")[-1]
        token = (auth or "").removeprefix("Bearer ")
        if token not in self.tokens or token in self.revoked or file_id not in self.files:
            raise web.HTTPFound(f"{self.url}/signin")  # Slack sends strangers to its login page
        if file_id in self.stalled:
            await self._stopping.wait()
        return web.Response(body=self.files[file_id][1], content_type="application/octet-stream")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        self._changed()
        return web.Response(text="ok")

    def application(self) -> web.Application:
        """The aiohttp application of the fake."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file}/{tail:.*}", self._download)
        app.router.add_post("/respond/{hook}", self._respond)
        app.router.add_get("/socket", self.socket.handle)
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        return app

    def response_url(self) -> str:
        """A fresh response_url for a slash command."""
        return f"{self.url}/respond/{self.next_id('H')}"


async def _params(request: web.Request) -> dict[str, Any]:
    """Query and body arguments: form or JSON, as slack-sdk sends them."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return params


@asynccontextmanager
async def running_fake_slack() -> AsyncIterator[FakeSlack]:
    """Start the fake on a random port and stop it on exit."""
    fake = FakeSlack()
    runner = web.AppRunner(fake.application(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        fake.socket.url = fake.url.replace("http://", "ws://") + "/socket"
        yield fake
    finally:
        fake._stopping.set()
        await fake.socket.close()
        await runner.cleanup()


def sign(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack signs a request with (v0 HMAC-SHA256 over `v0:ts:body`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def post_signed(
    url: str,
    body: str,
    *,
    content_type: str,
    retry_num: int | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """POST `body` as Slack would (signed unless `headers` replace the signature)."""
    sent = {"Content-Type": content_type, **(headers if headers is not None else sign(body))}
    if retry_num is not None:
        sent |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body.encode(), headers=sent) as response,
    ):
        return response.status, await response.text()


def json_body(payload: dict[str, Any]) -> str:
    """An Events API body."""
    return json.dumps(payload)

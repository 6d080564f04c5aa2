"""A wire-level fake Discord on 127.0.0.1: the REST routes the bot uses and the gateway.

It records every request, keeps uploaded bytes, refuses what Discord refuses (see
`fake_rules`), and can answer one route with a 429 that discord.py must wait out.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.e2e.discord import payloads as p
from tests.e2e.discord.fake_channels import ChannelRoutes, Stored
from tests.e2e.discord.fake_gateway import Gateway, shard_of
from tests.e2e.discord.fake_guilds import GuildRoutes
from tests.e2e.discord.fake_interactions import InteractionRoutes
from tests.e2e.discord.fake_rules import (
    BODY,
    Body,
    Refusal,
    check_commands,
    json_response,
    read_body,
)

TOKEN = "fake-bot-token.for-tests-only"
_BOT_ROUTES = ("/users", "/oauth2", "/gateway/", "/applications", "/channels")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    """One request the fake answered."""

    method: str
    route: str  # the route template, e.g. "/channels/{channel_id}/messages"
    path: str
    status: int
    json: dict[str, Any] | list[Any] | None
    files: dict[int, tuple[str, bytes, str]]
    at: float


class FakeDiscord(ChannelRoutes, InteractionRoutes, GuildRoutes):
    """The fake: a guild with one text channel (more with `add_guild` or
    `add_guild_in_shard`), a bot user, members, and the routes below. `shards` is the count
    Discord recommends, `required_shards` the fewest it accepts, `max_concurrency` how many
    shards may identify at once."""

    def __init__(self, *, shards: int = 1, required_shards: int = 1, max_concurrency: int = 1):
        self.app_id = p.snowflake()
        self.bot = p.user(p.snowflake(), "samsar", bot=True)
        self.guild_id = p.snowflake()
        self.channel_id = p.snowflake()
        self.channels: dict[int, dict[str, Any]] = {
            self.channel_id: p.text_channel(self.channel_id, self.guild_id)
        }
        self.messages: dict[int, list[Stored]] = {self.channel_id: []}
        self.max_concurrency = max_concurrency
        self.requests: list[Recorded] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.cdn: dict[int, bytes] = {}
        self.cdn_delays: dict[int, float] = {}  # attachment id → seconds the CDN takes to serve it
        self.cdn_behaviours: dict[int, str] = {}  # attachment id → "reset" or "endless"
        self.cdn_fetches: list[int] = []  # attachment ids the CDN was asked for
        self.cdn_hosts: list[str] = []  # the Host each of those requests named
        self.rate_limits: dict[tuple[str, str], tuple[float, Callable[[Body], bool]]] = {}
        self.base_url = ""
        self.gateway = Gateway(
            TOKEN, self._ready_payloads, shards=shards, required_shards=required_shards
        )
        self._changed = asyncio.Condition()
        self.gateway.on_change = self._poke
        InteractionRoutes.__init__(self)
        GuildRoutes.__init__(self)
        self.joined.append(self.guild_id)

    # --- server ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeDiscord]:
        """Serve on a random 127.0.0.1 port until the block ends."""
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_get("/gateway-ws", self.gateway.handle)
        api = "/api/v10"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway/bot", self._gateway_bot),
            ("GET", "/gateway", self._gateway),
            ("PUT", "/applications/{app_id}/commands", self._sync),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._sync),
            *self.channel_routes(),
            *self.interaction_routes(),
            *self.guild_routes(),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, handler)
        app.router.add_get("/cdn/attachments/{attachment_id}/{filename}", self.cdn_file)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.gateway.url = f"ws://127.0.0.1:{port}/gateway-ws"
        try:
            yield self
        finally:
            await runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        template = route.canonical.removeprefix("/api/v10") if route else request.path
        body: Body | None = None
        try:
            authorized = request.headers.get("Authorization") == f"Bot {TOKEN}"
            if template.startswith(_BOT_ROUTES) and not authorized:
                raise Refusal(401, 0, "401: Unauthorized")
            if request.method in ("POST", "PATCH"):
                body = await read_body(request)
            request[BODY] = body or Body({})
            limited = self.rate_limits.get((request.method, template))
            if limited is not None and limited[1](request[BODY]):
                del self.rate_limits[(request.method, template)]
                response = self._too_many(limited[0])
            else:
                response = await handler(request)
        except Refusal as refusal:
            response = refusal.response()
        if template != "/gateway-ws":
            await self._record(request, template, response.status, body)
        return response

    async def _poke(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _record(
        self, request: web.Request, route: str, status: int, body: Body | None
    ) -> None:
        async with self._changed:
            self.requests.append(
                Recorded(
                    request.method,
                    route,
                    request.path,
                    status,
                    body.json if body else None,
                    body.files if body else {},
                    time.monotonic(),
                )
            )
            self._changed.notify_all()

    def _too_many(self, retry_after: float) -> web.Response:
        headers = {
            "Via": "1.1 google",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": str(retry_after),
            "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "user",
            "Retry-After": str(retry_after),
        }
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": False,
        }
        return json_response(body, status=429, headers=headers)

    async def _unknown(self, request: web.Request) -> web.Response:
        return json_response({"message": "404: Not Found", "code": 0}, status=404)

    # --- what tests steer and read -----------------------------------------------------

    def rate_limit_once(
        self,
        method: str,
        route: str,
        retry_after: float = 0.3,
        when: Callable[[Body], bool] = lambda body: True,
    ) -> None:
        """Answer the next `method route` (a template) whose body passes `when` with 429 and
        `retry_after`."""
        self.rate_limits[(method, route)] = (retry_after, when)

    async def wait_for(
        self, predicate: Callable[[], Any], within: float = 10.0, what: str = "condition"
    ) -> Any:
        """Until `predicate()` is truthy after some request (polled on each change)."""
        try:
            async with asyncio.timeout(within), self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def calls(self, method: str, route: str) -> list[Recorded]:
        """The recorded requests to one route template."""
        return [r for r in self.requests if r.method == method and r.route == route]

    def posted(self, channel_id: int) -> list[Stored]:
        """Messages in a channel or thread, oldest first."""
        return list(self.messages.get(channel_id, []))

    def replies(self, channel_id: int) -> list[Stored]:
        """What the bot posted in a channel or thread, oldest first."""
        return [m for m in self.posted(channel_id) if m.via_api]

    def threads(self) -> list[dict[str, Any]]:
        """Threads opened so far."""
        return [c for c in self.channels.values() if c["type"] == p.PUBLIC_THREAD]

    @property
    def guild_ids(self) -> list[int]:
        """The servers the bot is in."""
        return list(self.joined)

    def add_guild_in_shard(self, shard_id: int, shard_count: int) -> tuple[int, int]:
        """Another guild the bot is in, with a text channel, whose events go to shard
        `shard_id` of `shard_count`; returns (guild id, channel id)."""
        guild_id = p.snowflake_in_shard(shard_id, shard_count)
        channel_id = p.snowflake()
        self.joined.append(guild_id)
        self.channels[channel_id] = p.text_channel(channel_id, guild_id)
        self.messages[channel_id] = []
        return guild_id, channel_id

    def add_attachment(
        self, data: bytes, filename: str, *, delay: float = 0.0, behaviour: str | None = None
    ) -> dict[str, Any]:
        """An attachment a member uploaded, served by the fake's CDN route after `delay` s
        (or with a `behaviour`: "reset" hangs up, "endless" never stops sending bytes)."""
        attachment_id = p.snowflake()
        self.cdn[attachment_id] = data
        if delay:
            self.cdn_delays[attachment_id] = delay
        if behaviour:
            self.cdn_behaviours[attachment_id] = behaviour
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        url = f"{self.base_url}/cdn/attachments/{attachment_id}/{filename}"
        return p.attachment(attachment_id, filename, len(data), url, mime)

    # --- gateway payloads --------------------------------------------------------------

    def _ready_payloads(
        self, session_id: str, shard: tuple[int, int]
    ) -> list[tuple[str, dict[str, Any]]]:
        """READY, then a GUILD_CREATE for each guild of the shard."""
        shard_id, count = shard
        guilds = [g for g in self.joined if shard_of(g, count) == shard_id]
        ready = {
            "v": 10,
            "user": self.bot,
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
            "session_id": session_id,
            "resume_gateway_url": self.gateway.url,
            "shard": [shard_id, count],
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        created = [("GUILD_CREATE", self.guild_create(guild_id)) for guild_id in guilds]
        return [("READY", ready), *created]

    # --- REST: identity and commands ---------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        return json_response(self.bot)

    async def _application(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "id": str(self.app_id),
                "name": "Samsar",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": p.user(1, "owner"),
                "verify_key": "0" * 64,
                "flags": 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED: intent enabled in the portal
                "bot": self.bot,
            }
        )

    async def _gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway.url})

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        limit = {
            "total": 1000,
            "remaining": 1000 - len(self.gateway.identifies),
            "reset_after": 86_400_000,
            "max_concurrency": self.max_concurrency,
        }
        body = {
            "url": self.gateway.url,
            "shards": self.gateway.shards,
            "session_start_limit": limit,
        }
        return json_response(body)

    async def _sync(self, request: web.Request) -> web.Response:
        if request.match_info["app_id"] != str(self.app_id):
            raise Refusal(403, 50001, "Missing Access")
        guild = request.match_info.get("guild_id")
        if guild is not None and int(guild) not in self.joined:
            # A server the bot is not in (or was invited to without applications.commands).
            raise Refusal(403, 50001, "Missing Access")
        raw = await request.json()
        synced = []
        for command in check_commands(raw):
            stored = {
                **command,
                "id": str(p.snowflake()),
                "application_id": str(self.app_id),
                "version": str(p.snowflake()),
                "type": command.get("type", 1),
            }
            if guild:
                stored["guild_id"] = guild
            synced.append(stored)
        self.commands[guild or "global"] = synced
        return json_response(synced)

"""The fake's servers: more than the main one, joined before the bot starts or while it runs,
and `DELETE /users/@me/guilds/{guild_id}` (the bot leaves), answered with GUILD_DELETE."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.e2e.discord import payloads as p
from tests.e2e.discord.fake_rules import Refusal

if TYPE_CHECKING:
    from tests.e2e.discord.fake_discord import FakeDiscord


class GuildRoutes:
    """Mixed into FakeDiscord: which servers the bot is in, and leaving one."""

    def __init__(self) -> None:
        self.joined: list[int] = []  # servers the bot is in, in the order it joined them
        self.leave_requests: list[int] = []  # servers the bot asked to leave, as asked
        self._leaves_open = asyncio.Event()
        self._leaves_open.set()

    def guild_routes(self: FakeDiscord) -> list[tuple[str, str, Any]]:
        """The REST routes of servers."""
        return [("DELETE", "/users/@me/guilds/{guild_id}", self._leave)]

    def add_guild(self: FakeDiscord, *, joined: bool) -> tuple[int, int]:
        """Another server with one text channel; `joined`: the bot is in it from the start.
        Returns (server id, channel id)."""
        guild_id, channel_id = p.snowflake(), p.snowflake()
        self.channels[channel_id] = p.text_channel(channel_id, guild_id)
        self.messages[channel_id] = []
        if joined:
            self.joined.append(guild_id)
        return guild_id, channel_id

    def guild_create(self: FakeDiscord, guild_id: int) -> dict[str, Any]:
        """The GUILD_CREATE payload of a server, with its channels and threads."""
        mine = [c for c in self.channels.values() if c.get("guild_id") == str(guild_id)]
        text = [c for c in mine if c["type"] == p.TEXT]
        threads = [c for c in mine if c["type"] == p.PUBLIC_THREAD]
        return p.guild(guild_id, text, threads, self.bot)

    async def join(self: FakeDiscord, guild_id: int) -> None:
        """Someone adds the bot to the server: GUILD_CREATE, as Discord sends it then (without
        `unavailable`, which only a server coming back from an outage carries)."""
        self.joined.append(guild_id)
        created = self.guild_create(guild_id)
        del created["unavailable"]
        await self.gateway.dispatch("GUILD_CREATE", created)

    def hold_leaves(self) -> None:
        """Keep the bot's requests to leave a server waiting (until `release_leaves`)."""
        self._leaves_open.clear()

    def release_leaves(self) -> None:
        """Answer the held requests to leave, and any later ones at once."""
        self._leaves_open.set()

    async def _leave(self: FakeDiscord, request: web.Request) -> web.StreamResponse:
        guild_id = int(request.match_info["guild_id"])
        self.leave_requests.append(guild_id)
        await self._poke()
        await self._leaves_open.wait()
        if guild_id not in self.joined:
            raise Refusal(404, 10004, "Unknown Guild")
        self.joined.remove(guild_id)
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild_id)})
        return web.Response(status=204)

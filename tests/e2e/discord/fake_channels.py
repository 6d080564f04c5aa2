"""The fake's channel routes: messages, threads from a message, typing, and the CDN."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.e2e.discord import payloads as p
from tests.e2e.discord.fake_rules import BODY, Body, Refusal, check_message, json_response

if TYPE_CHECKING:
    from tests.e2e.discord.fake_discord import FakeDiscord

GUILD_UPLOAD_LIMIT = 10 * 1024 * 1024


@dataclass
class Stored:
    """A message the bot posted (or a member wrote), with the bytes of its attachments."""

    payload: dict[str, Any]
    files: list[bytes] = field(default_factory=list)
    via_api: bool = False  # posted through the REST API (by the bot), not written by a member

    @property
    def content(self) -> str:
        """The message text."""
        return str(self.payload.get("content") or "")


class ChannelRoutes:
    """Mixed into FakeDiscord: what the bot does in channels and threads."""

    def channel_routes(self: FakeDiscord) -> list[tuple[str, str, Any]]:
        """The REST routes of channels."""
        return [
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self._thread),
            ("POST", "/channels/{channel_id}/typing", self._typing),
        ]

    def _channel(self: FakeDiscord, request: web.Request) -> int:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.channels:
            raise Refusal(404, 10003, "Unknown Channel")
        guild_id = self.channels[channel_id].get("guild_id")
        if guild_id is not None and int(guild_id) not in self.joined:
            raise Refusal(403, 50001, "Missing Access")  # a server the bot is not in
        return channel_id

    def store_message(self: FakeDiscord, channel_id: int, body: Body, **extra: Any) -> Stored:
        """Keep a message the bot sent, with its uploaded files; returns it."""
        attachments, files = [], []
        for index in sorted(body.files):
            name, data, mime = body.files[index]
            attachment_id = p.snowflake()
            self.cdn[attachment_id] = data
            url = f"{self.base_url}/cdn/attachments/{attachment_id}/{name}"
            attachments.append(p.attachment(attachment_id, name, len(data), url, mime))
            files.append(data)
        channel = self.channels.get(channel_id, {})
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        payload = p.message(
            p.snowflake(),
            channel_id,
            self.bot,
            body.json.get("content") or "",
            guild_id=guild_id,
            attachments=attachments,
            **extra,
        )
        payload["allowed_mentions"] = body.json.get("allowed_mentions")
        payload["components"] = body.json.get("components") or []
        stored = Stored(payload, files, via_api=True)
        self.messages.setdefault(channel_id, []).append(stored)
        return stored

    async def _create_message(self: FakeDiscord, request: web.Request) -> web.Response:
        channel_id = self._channel(request)
        body: Body = request[BODY]
        check_message(body, upload_limit=GUILD_UPLOAD_LIMIT, creating=True)
        reference = body.json.get("message_reference")
        stored = self.store_message(
            channel_id, body, reference=reference, kind=19 if reference else 0
        )
        return json_response(stored.payload)

    async def _thread(self: FakeDiscord, request: web.Request) -> web.Response:
        channel_id = self._channel(request)
        message_id = int(request.match_info["message_id"])
        known = [m for m in self.messages[channel_id] if int(m.payload["id"]) == message_id]
        if not known:
            raise Refusal(404, 10008, "Unknown Message")
        if message_id in self.channels:
            raise Refusal(400, 160004, "A thread has already been created for this message")
        name = request[BODY].json.get("name", "")
        if not 1 <= len(name) <= 100:
            raise Refusal(400, 50035, "Invalid Form Body")
        # A thread started from a message has the message's id.
        guild_id = int(self.channels[channel_id].get("guild_id", self.guild_id))
        created = p.thread(message_id, guild_id, channel_id, int(self.bot["id"]), name)
        self.channels[message_id] = created
        self.messages[message_id] = []
        await self.gateway.dispatch("THREAD_CREATE", {**created, "newly_created": True})
        return json_response(created, status=201)

    async def _typing(self: FakeDiscord, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    async def cdn_file(self: FakeDiscord, request: web.Request) -> web.Response:
        attachment_id = int(request.match_info["attachment_id"])
        delay = self.cdn_delays.get(attachment_id)
        if delay:  # a slow CDN edge, as a knob of the fake (the test itself never sleeps)
            await asyncio.sleep(delay)
        data = self.cdn.get(attachment_id)
        if data is None:
            return web.Response(status=404, text="Not Found")
        self.cdn_fetches.append(attachment_id)
        self.cdn_hosts.append(request.host)
        behaviour = self.cdn_behaviours.get(attachment_id)
        if behaviour == "reset":  # the connection drops before any answer
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if behaviour == "endless":  # more bytes than any size declared, for as long as read
            return await self._endless(request)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _endless(self: FakeDiscord, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"\x00" * 65536)  # waits while the client reads
        except (ConnectionError, RuntimeError):  # the client stopped reading and hung up
            return response

"""The fake gateway: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, dispatch, RESUME, and
sharding as Discord does it.

Each IDENTIFY names its shard (`shard: [id, count]`, `[0, 1]` when left out) and opens a session
of its own, with its own sequence numbers and its own events kept for RESUME. An event of a guild
goes only to the sessions of the guild's shard, `(guild_id >> 22) % count`; one of no guild (a
DM) goes to shard 0. An IDENTIFY with a shard that cannot be is closed with 4010, one with fewer
shards than the bot needs with 4011, a wrong token with 4004.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

HELLO, HEARTBEAT, IDENTIFY, RESUME, HEARTBEAT_ACK, DISPATCH = 10, 1, 2, 6, 11, 0
INVALID_SESSION = 9
AUTHENTICATION_FAILED = 4004
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011
HEARTBEAT_INTERVAL_MS = 41_250

Shard = tuple[int, int]  # (shard id, shard count), as IDENTIFY names it
ReadyPayloads = Callable[[str, Shard], list[tuple[str, dict[str, Any]]]]


@dataclass
class Event:
    """One dispatched event with its sequence number."""

    seq: int
    name: str
    data: dict[str, Any]


def shard_of(guild_id: int | None, count: int) -> int:
    """The shard a guild's events go to; DMs (no guild) go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % count


def guild_of(data: dict[str, Any]) -> int | None:
    """The guild an event belongs to, if any (a mangled id, as the fuzz tests send: none)."""
    guild_id = data.get("guild_id")
    if isinstance(guild_id, int | str) and str(guild_id).isascii() and str(guild_id).isdigit():
        return int(guild_id)
    return None


@dataclass
class Session:
    """One IDENTIFYed session of one shard: its sequence numbers and its events, for RESUME."""

    session_id: str
    shard: Shard
    ws: web.WebSocketResponse | None = None
    events: list[Event] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # sequence numbers, in sending order
    replay_floor: int | None = None
    seq: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def owns(self, guild_id: int | None) -> bool:
        """Whether events of this guild (None: a DM) come to this session."""
        shard_id, count = self.shard
        return shard_of(guild_id, count) == shard_id

    async def dispatch(self, name: str, data: dict[str, Any]) -> int:
        """Send an event with the next sequence number (kept for RESUME); returns the number."""
        async with self.lock:
            self.seq += 1
            event = Event(self.seq, name, data)
            self.events.append(event)
            if self.ws is not None:
                await self._send(event)
            return event.seq

    async def replay(self, seen: int) -> None:
        """Send again what came after `seen` (a RESUME)."""
        if self.replay_floor is not None:
            seen, self.replay_floor = min(seen, self.replay_floor - 1), None
        async with self.lock:
            for event in [e for e in self.events if e.seq > seen]:
                await self._send(event)

    async def _send(self, event: Event) -> None:
        assert self.ws is not None
        self.sent.append(event.seq)
        await self.ws.send_json({"op": DISPATCH, "s": event.seq, "t": event.name, "d": event.data})


@dataclass
class Gateway:
    """Every session of the bot's shards; `ready_payloads` builds READY and GUILD_CREATE of one
    shard. `shards` is the count GET /gateway/bot recommends, `required_shards` the fewest
    Discord accepts (more guilds than one shard may hold need more)."""

    token: str
    ready_payloads: ReadyPayloads
    url: str = ""
    shards: int = 1
    required_shards: int = 1
    sessions: list[Session] = field(default_factory=list)
    identifies: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # close codes sent in answer to IDENTIFY
    heartbeats: int = 0
    on_change: Callable[[], Awaitable[None]] | None = None  # told of each IDENTIFY and RESUME
    _change: asyncio.Condition = field(default_factory=asyncio.Condition)
    _open: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._open.set()

    def hold(self) -> None:
        """Say HELLO to no new connection until `release` (Discord unreachable for a while)."""
        self._open.clear()

    def release(self) -> None:
        """Let new connections on again."""
        self._open.set()

    async def _changed(self) -> None:
        async with self._change:
            self._change.notify_all()
        if self.on_change is not None:
            await self.on_change()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """One websocket connection from the client."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self._open.wait()
        await ws.send_json({"op": HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            op, data = payload.get("op"), payload.get("d")
            if op == HEARTBEAT:
                self.heartbeats += 1
                await ws.send_json({"op": HEARTBEAT_ACK})
            elif op == IDENTIFY:
                await self._identify(ws, data)
            elif op == RESUME:
                await self._resume(ws, data)
        for session in self.sessions:
            if session.ws is ws:
                session.ws = None
        await self._changed()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await self._refuse(ws, AUTHENTICATION_FAILED, "Authentication failed.")
            return
        shard = data.get("shard", [0, 1])
        if not _valid_shard(shard):
            await self._refuse(ws, INVALID_SHARD, "Invalid shard.")
            return
        shard_id, count = shard
        if count < self.required_shards:
            await self._refuse(ws, SHARDING_REQUIRED, "Sharding required.")
            return
        self.identifies.append(data)
        # A new session of a shard ends the earlier ones that lost their connection (nothing
        # resumes them any more); one still connected goes on, as Discord lets it.
        self.sessions = [s for s in self.sessions if s.ws is not None or s.shard[0] != shard_id]
        session = Session(secrets.token_hex(16), (shard_id, count), ws)
        self.sessions.append(session)
        for name, body in self.ready_payloads(session.session_id, session.shard):
            await session.dispatch(name, body)
        await self._changed()

    async def _refuse(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        self.refused.append(code)
        await ws.close(code=code, message=reason.encode())

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = next((s for s in self.sessions if s.session_id == data.get("session_id")), None)
        if data.get("token") != self.token or session is None:
            await ws.send_json({"op": INVALID_SESSION, "d": False})
            return
        self.resumes.append(data)
        session.ws = ws
        await session.replay(data.get("seq") or 0)
        await session.dispatch("RESUMED", {})
        await self._changed()

    async def dispatch(self, name: str, data: dict[str, Any]) -> int:
        """Send an event to the sessions of its guild's shard (a DM's: shard 0), kept there
        for RESUME; returns its sequence number in the first of them (0: no session)."""
        # GUILD_CREATE/UPDATE/DELETE name their guild by `id`.
        is_guild = name in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE")
        guild_id = guild_of({"guild_id": data.get("id")} if is_guild else data)
        numbers = [await s.dispatch(name, data) for s in self.sessions if s.owns(guild_id)]
        return numbers[0] if numbers else 0

    def live(self, shard_id: int | None = None) -> list[Session]:
        """The sessions with a connection (of one shard, if given)."""
        return [
            s
            for s in self.sessions
            if s.ws is not None and (shard_id is None or s.shard[0] == shard_id)
        ]

    def session(self, shard_id: int = 0) -> Session:
        """The newest session of a shard."""
        return [s for s in self.sessions if s.shard[0] == shard_id][-1]

    def received(self, shard_id: int, name: str) -> list[dict[str, Any]]:
        """The `name` events sent to the sessions of one shard."""
        return [
            event.data
            for session in self.sessions
            if session.shard[0] == shard_id
            for event in session.events
            if event.name == name and event.seq in session.sent
        ]

    async def wait_connected(self, within: float = 10.0, *, shards: int = 1) -> None:
        """Until clients hold sessions of `shards` different shards (identified or resumed)."""
        async with asyncio.timeout(within), self._change:
            while len({s.shard[0] for s in self.live()}) < shards:
                await self._change.wait()

    async def close_with(self, code: int, *, shard_id: int | None = None) -> None:
        """Close the connections (of one shard) with a close code, as Discord does to end a
        session for good (4004 bad token, 4010-4014: the client cannot go on)."""
        for session in self.live(shard_id):
            ws, session.ws = session.ws, None
            assert ws is not None
            await ws.close(code=code, message=b"closed by the fake")

    async def drop(self, *, replay_from: int | None = None, shard_id: int | None = None) -> None:
        """Close the connections (of one shard) like a network blip; with `replay_from`,
        replay from that seq on RESUME."""
        for session in self.live(shard_id):
            ws, session.ws = session.ws, None
            if replay_from is not None:
                # Discord may deliver again what the client already saw: forget it was seen.
                session.replay_floor = replay_from
            assert ws is not None
            await ws.close(code=4000, message=b"reconnect")


def _valid_shard(shard: object) -> bool:
    """`[id, count]` with 0 <= id < count."""
    if not isinstance(shard, list) or len(shard) != 2:
        return False
    shard_id, count = shard
    return type(shard_id) is int and type(count) is int and count >= 1 and 0 <= shard_id < count

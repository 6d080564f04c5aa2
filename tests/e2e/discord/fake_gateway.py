"""The fake gateway: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, dispatch, RESUME."""

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
HEARTBEAT_INTERVAL_MS = 41_250


@dataclass
class Event:
    """One dispatched event with its sequence number."""

    seq: int
    name: str
    data: dict[str, Any]


@dataclass
class Gateway:
    """One session's worth of gateway; `ready_payloads` builds READY and GUILD_CREATE."""

    token: str
    ready_payloads: Callable[[str], list[tuple[str, dict[str, Any]]]]
    url: str = ""
    events: list[Event] = field(default_factory=list)
    session_id: str | None = None
    identifies: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    sent: list[int] = field(default_factory=list)  # sequence numbers, in sending order
    _ws: web.WebSocketResponse | None = None
    _replay_floor: int | None = None
    _seq: int = 0
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    on_change: Callable[[], Awaitable[None]] | None = None  # told of each IDENTIFY and RESUME

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """One websocket connection from the client."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
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
        if self._ws is ws:
            self._ws = None
            self._connected.clear()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        self.identifies.append(data)
        self.session_id = secrets.token_hex(16)
        self._ws = ws
        for name, body in self.ready_payloads(self.session_id):
            await self.dispatch(name, body)
        self._connected.set()
        await self._changed()

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.token or data.get("session_id") != self.session_id:
            await ws.send_json({"op": INVALID_SESSION, "d": False})
            return
        self.resumes.append(data)
        self._ws = ws
        seen = data.get("seq") or 0
        if self._replay_floor is not None:
            seen, self._replay_floor = min(seen, self._replay_floor - 1), None
        async with self._send_lock:
            for event in [e for e in self.events if e.seq > seen]:
                await self._send(event)
        await self.dispatch("RESUMED", {})
        self._connected.set()
        await self._changed()

    async def dispatch(self, name: str, data: dict[str, Any]) -> int:
        """Send an event with the next sequence number (kept for RESUME); returns the number."""
        async with self._send_lock:
            self._seq += 1
            event = Event(self._seq, name, data)
            self.events.append(event)
            if self._ws is not None:
                await self._send(event)
            return event.seq

    async def _send(self, event: Event) -> None:
        assert self._ws is not None
        self.sent.append(event.seq)
        await self._ws.send_json({"op": DISPATCH, "s": event.seq, "t": event.name, "d": event.data})

    async def wait_connected(self, within: float = 10.0) -> None:
        """Until a client has identified (or resumed)."""
        async with asyncio.timeout(within):
            await self._connected.wait()

    async def close_with(self, code: int) -> None:
        """Close the connection with a close code, as Discord does to end a session for good
        (4004 bad token, 4010-4014: the client cannot go on)."""
        ws, self._ws = self._ws, None
        self._connected.clear()
        if ws is not None:
            await ws.close(code=code, message=b"closed by the fake")

    async def drop(self, *, replay_from: int | None = None) -> None:
        """Close the connection like a network blip; with `replay_from`, replay from that seq."""
        ws, self._ws = self._ws, None
        self._connected.clear()
        if replay_from is not None:
            # Discord may deliver again what the client already saw: forget it was seen.
            self._replay_floor = replay_from
        if ws is not None:
            await ws.close(code=4000, message=b"reconnect")

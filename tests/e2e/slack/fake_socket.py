"""The fake Socket Mode endpoint: `hello` on connect, envelopes out, acks back."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from tests.e2e.slack.fake_records import APP_ID


class SocketServer:
    """Websocket connections reached through apps.connections.open; acks by envelope id."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self.url = ""
        self.connections: list[web.WebSocketResponse] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self._changed = changed
        self._ids = itertools.count(1)
        self._connected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """One Socket Mode connection (the ticket in the query is not checked further)."""
        if "ticket" not in request.query:
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.connections),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                "connection_info": {"app_id": APP_ID},
            }
        )
        self._connected.set()
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    message = json.loads(frame.data)
                    if "envelope_id" in message:
                        self.acks[message["envelope_id"]] = message
                        self._changed()
        finally:
            self.connections.remove(ws)
            if not self.connections:
                self._connected.clear()
        return ws

    async def connected(self, within: float = 10.0) -> None:
        """Wait until a client is connected (a restarted one: connected again)."""
        async with asyncio.timeout(within):
            await self._connected.wait()

    async def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        accepts_response_payload: bool = False,
        connection: web.WebSocketResponse | None = None,
    ) -> str:
        """Send one envelope to `connection` (the newest by default); returns its envelope_id."""
        envelope_id = f"env-{next(self._ids):06d}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        self.sent.append(envelope)
        await (connection or self.connections[-1]).send_json(envelope)
        return envelope_id

    async def close(self) -> None:
        """Close every connection (the fake is stopping)."""
        for ws in list(self.connections):
            await ws.close()

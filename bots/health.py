"""Health, readiness and metrics of `samsar-bot run`, on one small HTTP server.

- `/healthz`: the process serves (200).
- `/readyz`: the database answers and every configured platform is connected (Discord READY
  on every shard of this process, Slack's socket connected or its HTTP endpoint listening):
  200, else 503; both with a JSON body saying what is what.
- `/metrics`: the counters and histograms of `core.metrics`, in Prometheus' text format.

Bound to HEALTH_HOST (127.0.0.1 unless the operator opens it, as a container does)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.metrics import REGISTRY

log = logging.getLogger(__name__)

DATABASE_WITHIN = 2.0  # seconds the database gets to answer a readiness check

_connected: dict[str, bool] = {}


def connected(platform: str, up: bool) -> None:
    """A platform (re)connected or lost its connection."""
    _connected[platform] = up


@asynccontextmanager
async def health_server(
    host: str, port: int, *, platforms: list[str], database: Callable[[], Awaitable[object]]
) -> AsyncIterator[str]:
    """Serve the three endpoints until the block ends; yields the base URL."""
    for name in platforms:
        _connected.setdefault(name, False)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(DATABASE_WITHIN):
                await database()
            db = "ok"
        except Exception as exc:  # any failure means not ready; the reason is logged
            log.warning("readiness: the database does not answer", extra={"error": repr(exc)})
            db = "unreachable"
        states = {name: "connected" if _connected.get(name) else "down" for name in platforms}
        ready = db == "ok" and all(state == "connected" for state in states.values())
        body = {"ready": ready, "database": db, "platforms": states}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        url = f"http://{host}:{bound}"
        log.info("health endpoints listening", extra={"url": url})
        yield url
    finally:
        await runner.cleanup()

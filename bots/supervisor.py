"""`samsar-bot run` as a service: each platform apart and restarted when it fails, and a
graceful stop on SIGTERM or SIGINT.

A platform that crashes is logged and started again with backoff while the others keep
serving; one that can never work (a refused token, a missing setting) stops for good with
one log line. The process ends non-zero only when every platform has stopped for good.

On the first SIGTERM or SIGINT the turn worker takes no new turns and lets the running ones
finish within the grace period while the platforms stay connected (their answers must still
be posted, and events that arrive meanwhile are recorded for whoever runs next); then the
platforms stop and the caller closes the store and the Samsar client. A second signal exits
at once. Nothing is lost either way: what is unfinished stays in the ledger and is resumed,
billed once, by the next start or another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

FIRST_WAIT = 1.0  # seconds before the first restart of a failed platform, doubling...
MAX_WAIT = 60.0  # ...up to this
HEALTHY = 60.0  # a platform that ran this long starts again from the first wait
STOP_WITHIN = 10.0  # seconds a platform gets to close its connections at the end


@dataclass(frozen=True, slots=True)
class Platform:
    """One platform's runner (serves until cancelled) and which of its errors are fatal."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    is_fatal: Callable[[BaseException], bool]


class AllPlatformsFailed(Exception):
    """Every platform stopped for good."""


async def serve(
    platforms: list[Platform], *, drain: Callable[[float], Awaitable[None]], grace: float
) -> None:
    """Run the platforms until a signal (then drain, stop, return) or until all failed."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.warning("second signal: exiting now; unfinished turns resume at the next start")
            logging.shutdown()
            os._exit(128 + signum)
        log.info("stopping: finishing running turns", extra={"signal": signum, "grace_s": grace})
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    tasks = [
        asyncio.create_task(_supervise(platform), name=f"platform:{platform.name}")
        for platform in platforms
    ]
    every_one_failed: asyncio.Future[list[None]] = asyncio.ensure_future(asyncio.gather(*tasks))
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({stop, every_one_failed}, return_when=asyncio.FIRST_COMPLETED)
        if not stopping.is_set():
            raise AllPlatformsFailed(", ".join(p.name for p in platforms))
        await drain(grace)
    finally:
        stop.cancel()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WITHIN):
                await asyncio.gather(*tasks, return_exceptions=True)
        every_one_failed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await every_one_failed
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")


async def _supervise(platform: Platform) -> None:
    """Run one platform, restarting it with backoff; return when it failed for good."""
    wait = FIRST_WAIT
    while True:
        started = time.monotonic()
        try:
            await platform.run()
            log.warning("platform stopped by itself; restarting", extra={"platform": platform.name})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the top of a platform: anything it raises is handled here
            if platform.is_fatal(exc):
                log.error(
                    "platform cannot run; it stays off",
                    extra={"platform": platform.name, "error": repr(exc)},
                )
                return
            log.exception("platform failed; restarting", extra={"platform": platform.name})
        if time.monotonic() - started >= HEALTHY:
            wait = FIRST_WAIT
        log.info("platform restarts", extra={"platform": platform.name, "in_s": wait})
        await asyncio.sleep(wait)  # the pace of restarts, not a wait for an event
        wait = min(wait * 2, MAX_WAIT)

"""Work after the ack: tracked background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """Runs each turn as a task that is kept (not garbage-collected), logged when it fails,
    and awaited or cancelled at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], *, event_key: str) -> None:
        """Start `work` now; the caller acknowledges Slack right after."""
        task = asyncio.create_task(self._guard(work, event_key), name=f"slack:{event_key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, None], event_key: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:  # the top of a task: nothing above it would see the error
            log.exception("slack work failed", extra={"event_key": event_key})

    @property
    def pending(self) -> int:
        """How many tasks are still running."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every task (including ones started meanwhile) is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel what is still running and wait for it to stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""In-process locks per key that admit holders in the order they asked, and forget idle keys."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class KeyedLocks:
    """One FIFO line per key. `hold(key)` takes a place in the line at once, when called.

    So the order is the order of the calls, whatever the caller awaits before entering:
    a Discord command can take its place, acknowledge the interaction, then wait its turn,
    and a message that arrives meanwhile still comes after it. A key is forgotten once its
    line is empty.
    """

    def __init__(self) -> None:
        self._lines: dict[str, deque[asyncio.Future[None]]] = {}

    def hold(self, key: str) -> Place:
        """A place in `key`'s line; `async with` it to wait for the turn and hold it."""
        line = self._lines.setdefault(key, deque())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not line:
            turn.set_result(None)
        line.append(turn)
        return Place(self, key, turn)

    def _leave(self, key: str, turn: asyncio.Future[None]) -> None:
        """Take `turn` out of the line; when it was first, the next one's turn comes."""
        line = self._lines[key]
        first = line[0] is turn
        line.remove(turn)
        if first and line:
            line[0].set_result(None)
        if not line:
            del self._lines[key]

    def __len__(self) -> int:
        return len(self._lines)


class Place:
    """A place in one key's line: entered when its turn comes, left on exit or `abandon()`."""

    def __init__(self, locks: KeyedLocks, key: str, turn: asyncio.Future[None]) -> None:
        self._locks = locks
        self._key = key
        self._turn = turn
        self._left = False

    async def __aenter__(self) -> None:
        try:
            await asyncio.shield(self._turn)
        except BaseException:
            self.abandon()  # cancelled while waiting: let the next one through
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abandon()

    def abandon(self) -> None:
        """Leave the line without (or after) holding it; safe to call more than once."""
        if not self._left:
            self._left = True
            self._locks._leave(self._key, self._turn)

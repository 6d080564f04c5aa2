"""The console's side of a turn: it prints the answer, writes the images, and tells the
member's prompt that the turn is over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bots import texts
from core.errors import BotError
from core.models import Prepared, Reply, Turn, TurnRequest
from core.ports import Posted

log = logging.getLogger(__name__)

COMMANDS = texts.Commands(buy="/buy", new_chat="/reset", reset="/reset")
SLOW = "(Samsar is taking longer than usual; the answer is printed here when it arrives.)"


class ConsoleChannel:
    """core.ports.TurnChannel for the terminal; `say` prints one block."""

    def __init__(self, say: Callable[[str], None], image_dir: Path) -> None:
        self._say = say
        self._image_dir = image_dir
        self._waiting: dict[str, asyncio.Future[None]] = {}

    def expect(self, turn_id: str) -> asyncio.Future[None]:
        """A future that is done once the turn's outcome was printed."""
        return self._waiting.setdefault(turn_id, asyncio.get_running_loop().create_future())

    async def prepare(self, turn: Turn, request: TurnRequest) -> Prepared:
        """The console member as recorded; the console attaches no files."""
        return Prepared(user=request.user)

    async def waiting(
        self, turn: Turn, request: TurnRequest, posted: Posted, place: int | None
    ) -> None:
        """The prompt already shows the member is waiting; one member has no line."""

    @contextlib.asynccontextmanager
    async def working(
        self, turn: Turn, request: TurnRequest, posted: Posted
    ) -> AsyncIterator[_Working]:
        """The prompt shows the elapsed time itself; this only says when Samsar is slow."""
        yield _Working(self._say)

    async def deliver(
        self, turn: Turn, request: TurnRequest, outcome: Reply | BotError, posted: Posted
    ) -> None:
        """Print the answer (or the error) and write its images."""
        if posted.value:  # printed before a crash; the member has it already
            self._settle(turn.turn_id)
            return
        if isinstance(outcome, BotError):
            self._say(f"! {texts.describe(outcome, COMMANDS)}")
        else:
            self._print(outcome)
        await posted.save("printed")
        self._settle(turn.turn_id)

    async def give_up(self, turn: Turn, request: TurnRequest, posted: Posted) -> None:
        """Printing cannot fail for good; say so if it ever did."""
        self._say("! The answer could not be shown.")
        self._settle(turn.turn_id)

    def _print(self, reply: Reply) -> None:
        if reply.text:
            self._say(reply.text)
        for image in reply.images:
            path = self._image_dir / image.filename
            try:
                self._image_dir.mkdir(parents=True, exist_ok=True)
                path.write_bytes(image.data)
            except OSError as exc:  # a read-only or full disk: the answer goes on
                reason = exc.strerror or type(exc).__name__
                self._say(
                    f"! The image {image.filename} could not be saved in "
                    f"{self._image_dir.resolve()} ({reason}). Set CONSOLE_IMAGE_DIR to a folder "
                    "you can write to; this image was billed but is not kept."
                )
                continue
            caption = f" — {image.revised_prompt}" if image.revised_prompt else ""
            self._say(f"[image] {path.resolve()}{caption}")
        if problems := texts.image_problems_line(reply.image_problems, reply.credits):
            self._say(problems)
        line = texts.credits_line(reply.credits)
        if line:
            self._say(f"  ({line})")

    def _settle(self, turn_id: str) -> None:
        future = self._waiting.pop(turn_id, None)
        if future is not None and not future.done():
            future.set_result(None)


class _Working:
    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    async def slow(self) -> None:
        self._say(SLOW)

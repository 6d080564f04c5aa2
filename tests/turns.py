"""Driving durable turns in tests: a recording channel for every platform, and `ask`/`imagine`
that record a turn, let the worker run it, and return what was delivered (or raise the error
the member was told)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from core.conversation.service import ConversationService
from core.errors import BotError
from core.models import (
    ImageChoice,
    IncomingMessage,
    InputImage,
    Prepared,
    Reply,
    Turn,
    TurnKind,
    TurnRequest,
)
from core.ports import Posted


class RecordingChannel:
    """core.ports.TurnChannel that hands the attached images over and records deliveries."""

    def __init__(self) -> None:
        self.images: dict[str, tuple[InputImage, ...]] = {}
        self.delivered: dict[str, Reply | BotError] = {}
        self.deliveries: list[str] = []  # turn ids, in delivery order
        self.slow: list[str] = []
        self.waits: list[tuple[str, int | None]] = []  # (turn id, place in line) as shown
        self.fail_deliveries = 0  # the next deliveries that raise, as a platform outage would
        self._waiting: dict[str, asyncio.Future[Reply | BotError]] = {}

    def expect(self, turn_id: str) -> asyncio.Future[Reply | BotError]:
        """Done with the outcome once the turn is delivered."""
        future = self._waiting.setdefault(turn_id, asyncio.get_running_loop().create_future())
        if turn_id in self.delivered and not future.done():
            future.set_result(self.delivered[turn_id])
        return future

    async def prepare(self, turn: Turn, request: TurnRequest) -> Prepared:
        return Prepared(request.user, self.images.get(request.attachments, ()))

    async def waiting(
        self, turn: Turn, request: TurnRequest, posted: Posted, place: int | None
    ) -> None:
        if await posted.save_while_waiting(f"waiting: {place}"):
            self.waits.append((turn.turn_id, place))

    @contextlib.asynccontextmanager
    async def working(self, turn: Turn, request: TurnRequest, posted: Posted) -> AsyncIterator[Any]:
        posted.save_soon("working")  # as a placeholder would be
        yield _Working(self, turn.turn_id)

    async def deliver(
        self, turn: Turn, request: TurnRequest, outcome: Reply | BotError, posted: Posted
    ) -> None:
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            raise ConnectionError("the platform is down")
        self.delivered[turn.turn_id] = outcome
        self.deliveries.append(turn.turn_id)
        future = self._waiting.get(turn.turn_id)
        if future is not None and not future.done():
            future.set_result(outcome)

    async def give_up(self, turn: Turn, request: TurnRequest, posted: Posted) -> None:
        self.deliveries.append(f"gave up on {turn.turn_id}")


class _Working:
    def __init__(self, channel: RecordingChannel, turn_id: str) -> None:
        self._channel = channel
        self._turn_id = turn_id

    async def slow(self) -> None:
        self._channel.slow.append(self._turn_id)


class TurnDriver:
    """The service, with `ask` and `imagine` that wait for the delivered outcome."""

    def __init__(self, service: ConversationService, channel: RecordingChannel) -> None:
        self.service = service
        self.channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)

    async def ask(self, message: IncomingMessage) -> Reply | None:
        """Answer a message; None for an event recorded before."""
        return await self._turn(message, TurnKind.ASK, None)

    async def imagine(
        self, message: IncomingMessage, choice: ImageChoice | None = None
    ) -> Reply | None:
        """Draw for a message; None for an event recorded before."""
        return await self._turn(message, TurnKind.IMAGINE, choice)

    async def submit(
        self,
        message: IncomingMessage,
        kind: TurnKind = TurnKind.ASK,
        choice: ImageChoice | None = None,
    ) -> Turn | None:
        """Record the turn only."""
        if message.images:
            self.channel.images[message.event_key] = message.images
        request = TurnRequest(
            message.user,
            message.thread,
            message.text,
            kind,
            attachments=message.event_key if message.images else "",
        )
        return await self.service.submit(
            message.event_key, request, has_attachments=bool(message.images), choice=choice
        )

    async def _turn(
        self, message: IncomingMessage, kind: TurnKind, choice: ImageChoice | None
    ) -> Reply | None:
        turn = await self.submit(message, kind, choice)
        if turn is None:
            return None
        outcome = await asyncio.wait_for(self.channel.expect(turn.turn_id), timeout=20)
        if isinstance(outcome, BotError):
            raise outcome
        return outcome


@contextlib.asynccontextmanager
async def driving(
    service: ConversationService,
    platforms: tuple[str, ...] = ("slack", "discord", "console"),
    *,
    channel: RecordingChannel | None = None,
) -> AsyncIterator[TurnDriver]:
    """The service's worker running, with one recording channel for `platforms` (share one
    between replicas: either may deliver a turn the other recorded)."""
    channel = channel or RecordingChannel()
    for platform in platforms:
        service.worker.attach(platform, channel)
    async with service.worker.serving():
        yield TurnDriver(service, channel)

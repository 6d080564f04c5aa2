"""Never a silent wait: a "thinking…" placeholder (or the assistant status line) that shows the
elapsed time until the answer replaces it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import texts

log = logging.getLogger(__name__)

# What a Web API call may raise once the client's own retries are spent (TimeoutError: no
# answer within the client's timeout).
WEB_API_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)
STOP_WITHIN = 15.0  # seconds an update in flight gets to finish before the answer goes


PLACEHOLDER_EVENT = "samsar_turn"
"""The event type of the metadata a placeholder carries: its turn's id, so that the turn, run
again after a crash that lost the placeholder's ts, finds it and takes it over."""


def placeholder_metadata(turn_id: str) -> dict[str, Any]:
    """The message metadata of a turn's placeholder."""
    return {"event_type": PLACEHOLDER_EVENT, "event_payload": {"turn_id": turn_id}}


def api_error(exc: SlackApiError) -> str | None:
    """Slack's error code (`channel_not_found`...), None when Slack's answer was not the JSON
    it should be (an HTML error page, a plain text body): slack-sdk then holds the raw HTTP
    response, or a body that is no dict, where the code would be."""
    data = getattr(exc.response, "data", None)
    if not isinstance(data, dict):
        return None
    code = data.get("error")
    return code if isinstance(code, str) else None


def error_code(exc: BaseException) -> str:
    """Slack's error code, or the exception's type, for a log line."""
    if isinstance(exc, SlackApiError):
        return api_error(exc) or "unreadable_answer"
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class Place:
    """Where a turn answers: the channel, the thread, the member, and whether the thread is on
    Slack's assistant surface (which has a status line instead of a placeholder)."""

    channel: str
    thread_ts: str
    user_id: str
    assistant: bool = False


class Progress:
    """`async with Progress(...) as progress:` shows work in the thread while the block runs.

    A placeholder posted before (by an earlier try of the same turn) is reused, not posted
    again; `placeholder_ts` is the one to replace with the answer.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        place: Place,
        *,
        drawing: bool,
        every: float = 3.0,
        placeholder_ts: str | None = None,
        turn_id: str | None = None,
    ) -> None:
        self._client = client
        self._place = place
        self._drawing = drawing
        self._every = every
        self._ticker: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.placeholder_ts = placeholder_ts
        self._turn_id = turn_id

    async def __aenter__(self) -> Progress:
        started = time.monotonic()
        try:
            if self._place.assistant:
                await self._status(texts.STATUS_THINKING)
            elif self.placeholder_ts is None:
                response = await self._client.chat_postMessage(
                    channel=self._place.channel,
                    thread_ts=self._place.thread_ts,
                    text=texts.THINKING,
                    metadata=placeholder_metadata(self._turn_id) if self._turn_id else None,
                )
                self.placeholder_ts = response.get("ts")
            else:  # posted by an earlier try, or to show the turn's place in line
                await self._client.chat_update(
                    channel=self._place.channel, ts=self.placeholder_ts, text=texts.THINKING
                )
        except WEB_API_ERRORS as exc:
            # The answer is still posted when it comes; only the progress is lost.
            log.warning("progress not shown", extra={"error": error_code(exc)})
        self._ticker = asyncio.create_task(self._tick(started))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An update already sent is let finish (cancelling it would not unsend it, and it
        # could then land after the answer and hide it); the next one never starts.
        self._stop.set()
        if self._ticker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._ticker), STOP_WITHIN)
            except TimeoutError:
                self._ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._ticker

    async def _tick(self, started: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._every)
            if self._stop.is_set():
                return
            elapsed = time.monotonic() - started
            try:
                if self._place.assistant:
                    await self._status(texts.status_working(elapsed, drawing=self._drawing))
                elif self.placeholder_ts is not None:
                    await self._client.chat_update(
                        channel=self._place.channel,
                        ts=self.placeholder_ts,
                        text=texts.still_working(elapsed, drawing=self._drawing),
                    )
            except WEB_API_ERRORS as exc:
                log.info("progress update failed", extra={"error": error_code(exc)})

    async def _status(self, status: str) -> None:
        await self._client.assistant_threads_setStatus(
            channel_id=self._place.channel, thread_ts=self._place.thread_ts, status=status
        )

"""Posting into a thread: the answer's pieces in order, its images, its credits line, errors.

Retries of a failed post (429 after `Retry-After`, dropped connections) belong to the Web
API client's retry handlers; nothing here ever runs the turn again.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots import texts as shared_texts
from bots.slack import texts
from bots.slack.mrkdwn import split_mrkdwn, to_mrkdwn
from bots.slack.progress import POST_ERRORS, Place, error_code
from core.models import Reply, ReplyImage

log = logging.getLogger(__name__)

Block = dict[str, Any]


def section(text: str) -> Block:
    """A mrkdwn section block."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    """A small grey context line."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


class Renderer:
    """Turns core's `Reply` (or an error sentence) into Slack messages and files."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def answer(self, place: Place, reply: Reply, placeholder_ts: str | None) -> None:
        """The reply's text in pieces (the first replaces the placeholder), then its images."""
        pieces = split_mrkdwn(to_mrkdwn(reply.text))
        credits = shared_texts.credits_line(reply.credits)
        messages: list[tuple[str, list[Block]]] = [(piece, [section(piece)]) for piece in pieces]
        if credits and messages:
            messages[-1][1].append(context(credits))
        elif credits:
            messages.append((credits, [context(credits)]))
        for index, (fallback, blocks) in enumerate(messages):
            await self.say(place, fallback, blocks, replace=placeholder_ts if index == 0 else None)
        for image in reply.images:
            await self._upload(place, image)
        log.info(
            "answer posted",
            extra={"channel": place.channel, "pieces": len(messages), "images": len(reply.images)},
        )

    async def say(
        self,
        place: Place,
        text: str,
        blocks: list[Block] | None = None,
        *,
        replace: str | None = None,
    ) -> None:
        """Post in the thread, or update the placeholder `replace`; a post that cannot be made
        after the client's retries is logged, never re-run as a turn."""
        try:
            if replace is not None:
                try:
                    await self._client.chat_update(
                        channel=place.channel, ts=replace, text=text, blocks=blocks
                    )
                    return
                except SlackApiError as exc:
                    # Someone deleted the placeholder: the answer becomes a new message.
                    log.info("placeholder not updated", extra={"error": exc.response.get("error")})
            await self._client.chat_postMessage(
                channel=place.channel, thread_ts=place.thread_ts, text=text, blocks=blocks
            )
        except POST_ERRORS as exc:
            log.error("post failed", extra={"channel": place.channel, "error": error_code(exc)})

    async def private(self, place: Place, text: str) -> None:
        """An ephemeral note to the member in the thread."""
        try:
            await self._client.chat_postEphemeral(
                channel=place.channel, user=place.user_id, thread_ts=place.thread_ts, text=text
            )
        except POST_ERRORS as exc:
            log.error(
                "ephemeral failed", extra={"channel": place.channel, "error": error_code(exc)}
            )

    async def _upload(self, place: Place, image: ReplyImage) -> None:
        title = image.revised_prompt or image.filename
        try:
            await self._client.files_upload_v2(
                channel=place.channel,
                thread_ts=place.thread_ts,
                file=image.data,
                filename=image.filename,
                title=title[:250],
                alt_txt=title[:1000],
            )
        except POST_ERRORS as exc:
            log.error(
                "image upload failed", extra={"channel": place.channel, "error": error_code(exc)}
            )
            await self.say(place, texts.image_failed(image.filename))

"""Posting into a thread: the answer's pieces in order, its images, its credits line, errors.

Retries of a failed post (429 after `Retry-After`, dropped connections) belong first to the
Web API client's retry handlers, then to the turn worker, which delivers again later from
where `Sent` says the last try stopped; nothing here ever runs the turn again. Every post
goes out with `parse=none`, no `link_names` and no unfurling: the text is shown as written,
never turned into mentions, and links from the model are not fetched by Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots import texts as shared_texts
from bots.slack import buttons, texts
from bots.slack.mrkdwn import escape, split_mrkdwn, to_mrkdwn
from bots.slack.progress import (
    PLACEHOLDER_EVENT,
    WEB_API_ERRORS,
    Place,
    api_error,
    error_code,
    placeholder_metadata,
)
from bots.slack.routes import Sent
from core.models import Reply, ReplyImage

log = logging.getLogger(__name__)

# chat.update errors that mean the placeholder cannot be edited any more (deleted, too old):
# the answer is posted as a new message instead. Any other error is retried as it is.
_PLACEHOLDER_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
_PAGES = 5  # pages of a thread (200 messages each) looked through for an earlier placeholder

Block = dict[str, Any]


ANSWER_PIECES = 5
"""A longer answer is not posted whole: its beginning, then the whole of it as a file."""


def section(text: str) -> Block:
    """A mrkdwn section block."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    """A small grey context line."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def answer_pieces(text: str) -> tuple[list[str], bool]:
    """The mrkdwn pieces of an answer, and whether it is too long to post whole."""
    return beginning(split_mrkdwn(to_mrkdwn(text)))


def beginning(pieces: list[str]) -> tuple[list[str], bool]:
    """The pieces to post, and whether the whole answer must follow as a file: past
    ANSWER_PIECES, only the beginning is posted, closed by a note that names the file."""
    if len(pieces) <= ANSWER_PIECES:
        return list(pieces), False
    return [*pieces[: ANSWER_PIECES - 1], escape(shared_texts.LONG_ANSWER)], True


class Renderer:
    """Turns core's `Reply` (or an error sentence) into Slack messages and files."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def answer(
        self,
        place: Place,
        reply: Reply,
        sent: Sent,
        save: Callable[[], Awaitable[None]],
        *,
        turn_id: str | None = None,
    ) -> None:
        """The reply's text in pieces (the first replaces the placeholder; of a long one only
        the beginning, then the whole as answer.md), then its images, going on from what
        `sent` says is posted already (and noting each post through `save`). An answer with
        neither text nor images says so rather than leave the placeholder."""
        # Pure Python over the whole answer (60 ms at 40,000 characters): in a thread, where
        # the loop gets the GIL back every few milliseconds.
        pieces, whole = await asyncio.to_thread(answer_pieces, reply.text)
        if problems := shared_texts.image_problems_line(reply.image_problems, reply.credits):
            pieces.append(escape(problems))
        if not pieces and not reply.images:
            pieces = [escape(texts.NOTHING_SAID)]
        credits = shared_texts.credits_line(reply.credits)
        messages: list[tuple[str, list[Block]]] = [(piece, [section(piece)]) for piece in pieces]
        if credits and messages:
            messages[-1][1].append(context(credits))
        elif credits:
            messages.append((credits, [context(credits)]))
        if turn_id is not None and reply.images:  # what next with the pictures below
            if not messages:
                messages.append((texts.PICTURE_NEXT, [section(escape(texts.PICTURE_NEXT))]))
            messages[-1][1].append(buttons.picture_actions(turn_id))
        if turn_id is not None and place.assistant and messages:
            messages[-1][1].append(buttons.feedback_actions(turn_id))
        for index, (fallback, blocks) in enumerate(messages):
            if index < sent.pieces:
                continue
            await self._post(place, fallback, blocks, replace=sent.placeholder)
            sent.placeholder, sent.pieces = None, sent.pieces + 1
            await save()
        if sent.placeholder is not None:  # images alone: they are the answer
            await self.delete(place, sent.placeholder)
            sent.placeholder = None
            await save()
        if whole and not sent.answer_file:
            await self._upload_answer(place, reply.text)
            sent.answer_file = True
            await save()
        for index, image in enumerate(reply.images):
            if index < sent.images:
                continue
            await self._upload(place, image)
            sent.images += 1
            await save()

        log.info(
            "answer posted",
            extra={"channel": place.channel, "pieces": len(messages), "images": len(reply.images)},
        )

    async def say(
        self,
        place: Place,
        sentence: str,
        *,
        replace: str | None = None,
        actions: Block | None = None,
    ) -> None:
        """Post a plain sentence (escaped: shown as written) in the thread, or put it in place
        of the placeholder `replace`, with `actions` (buttons) under it; raises when Slack
        cannot be reached."""
        text = escape(sentence)
        blocks = [section(text), actions] if actions is not None else None
        await self._post(place, text, blocks, replace=replace)

    async def _post(
        self, place: Place, text: str, blocks: list[Block] | None, *, replace: str | None
    ) -> None:
        """Post mrkdwn in the thread, or update the placeholder `replace`. Retries of a post
        (429, dropped connections, 5xx) are the client's; what fails after them raises."""
        if replace is not None:
            try:
                await self._client.chat_update(
                    channel=place.channel,
                    ts=replace,
                    text=text,
                    blocks=blocks,
                    parse="none",
                    link_names=False,
                )
                return
            except SlackApiError as exc:
                if api_error(exc) not in _PLACEHOLDER_GONE:
                    raise  # Slack's own trouble: the delivery is tried again later
                # Someone deleted the placeholder: the answer becomes a new message.
                log.info("placeholder not updated", extra={"error": api_error(exc)})
        await self._client.chat_postMessage(
            channel=place.channel,
            thread_ts=place.thread_ts,
            text=text,
            blocks=blocks,
            parse="none",
            link_names=False,
            unfurl_links=False,
            unfurl_media=False,
        )

    async def placeholder(self, place: Place, text: str, turn_id: str) -> str:
        """Post a turn's placeholder (plain text) in the thread; its ts."""
        response = await self._client.chat_postMessage(
            channel=place.channel,
            thread_ts=place.thread_ts,
            text=escape(text),
            parse="none",
            metadata=placeholder_metadata(turn_id),
        )
        return str(response["ts"])

    async def find_placeholder(self, place: Place, turn_id: str) -> str | None:
        """The ts of a placeholder of this turn already in the thread (posted by a run that
        died before keeping its ts), or None; a failure only logs (a new one is posted)."""
        cursor = None
        try:
            for _ in range(_PAGES):
                page = await self._client.conversations_replies(
                    channel=place.channel,
                    ts=place.thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                messages = page.get("messages")
                for message in reversed(messages if isinstance(messages, list) else []):
                    if _placeholder_of(message, turn_id):
                        return str(message["ts"])
                more = page.get("response_metadata")
                cursor = more.get("next_cursor") if isinstance(more, dict) else None
                if not cursor:
                    return None
        except WEB_API_ERRORS as exc:
            log.info("earlier placeholder not looked for", extra={"error": error_code(exc)})
        return None

    async def edit(self, place: Place, ts: str, text: str) -> None:
        """Put plain text in a message the bot posted (a placeholder)."""
        await self._client.chat_update(
            channel=place.channel, ts=ts, text=escape(text), parse="none"
        )

    async def suggest(self, place: Place, prompts: list[dict[str, str]]) -> None:
        """The assistant thread's suggested prompts (a failure only logs)."""
        if not prompts:
            return
        try:
            await self._client.assistant_threads_setSuggestedPrompts(
                channel_id=place.channel, thread_ts=place.thread_ts, prompts=prompts
            )
        except WEB_API_ERRORS as exc:
            log.info("suggested prompts not set", extra={"error": error_code(exc)})

    async def title(self, place: Place, text: str) -> None:
        """The assistant thread's title, from its first question (a failure only logs)."""
        title = " ".join(text.split())
        title = title if len(title) <= 60 else title[:59].rstrip() + "…"
        try:
            await self._client.assistant_threads_setTitle(
                channel_id=place.channel, thread_ts=place.thread_ts, title=title or "Samsar"
            )
        except WEB_API_ERRORS as exc:
            log.info("thread title not set", extra={"error": error_code(exc)})

    async def clear_status(self, place: Place) -> None:
        """Take the assistant thread's status line away (a failure only logs)."""
        try:
            await self.status(place, "")
        except WEB_API_ERRORS as exc:
            log.info("status not cleared", extra={"error": error_code(exc)})

    async def status(self, place: Place, text: str) -> None:
        """The assistant thread's status line."""
        await self._client.assistant_threads_setStatus(
            channel_id=place.channel, thread_ts=place.thread_ts, status=text
        )

    async def root(self, channel: str, text: str) -> str:
        """Post `text` (mrkdwn, its member-written parts already escaped) at the top of
        `channel`, with the flags of every post; returns its ts, the thread to answer in."""
        response = await self._client.chat_postMessage(
            channel=channel,
            text=text,
            parse="none",
            link_names=False,
            unfurl_links=False,
            unfurl_media=False,
        )
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            raise SlackClientError("chat.postMessage answered without a ts")
        return ts

    async def delete(self, place: Place, ts: str) -> None:
        """Take a message away (a placeholder); a failure only logs."""
        try:
            await self._client.chat_delete(channel=place.channel, ts=ts)
        except WEB_API_ERRORS as exc:
            log.info("placeholder not deleted", extra={"error": error_code(exc)})

    async def private(self, place: Place, sentence: str) -> None:
        """An ephemeral note (a plain sentence, escaped) to the member in the thread."""
        try:
            await self._client.chat_postEphemeral(
                channel=place.channel,
                user=place.user_id,
                thread_ts=place.thread_ts,
                text=escape(sentence),
                parse="none",
            )
        except WEB_API_ERRORS as exc:
            log.error(
                "ephemeral failed", extra={"channel": place.channel, "error": error_code(exc)}
            )

    async def _upload_answer(self, place: Place, text: str) -> None:
        """The whole answer, as written (Markdown), as a file in the thread."""
        await self._client.files_upload_v2(
            channel=place.channel,
            thread_ts=place.thread_ts,
            content=text,
            filename=shared_texts.ANSWER_FILE,
            title=shared_texts.ANSWER_FILE,
        )

    async def _upload(self, place: Place, image: ReplyImage) -> None:
        title = image.revised_prompt or image.filename
        await self._client.files_upload_v2(
            channel=place.channel,
            thread_ts=place.thread_ts,
            file=image.data,
            filename=image.filename,
            title=title[:250],
            alt_txt=title[:1000],
        )


def _placeholder_of(message: object, turn_id: str) -> bool:
    """Whether a message of `conversations.replies` is this turn's placeholder (anything
    shaped otherwise is not)."""
    if not isinstance(message, dict) or not isinstance(message.get("ts"), str):
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != PLACEHOLDER_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload.get("turn_id") == turn_id

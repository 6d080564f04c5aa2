"""Posting an answer: the head where the member asked, a thread opened from it, the rest inside."""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

import discord

from bots.discord import texts
from bots.discord.delivery import ChannelTarget, Target
from bots.discord.render import Outgoing, render
from bots.discord.translate import thread_ref
from core.conversation.service import ConversationService
from core.models import Reply, ThreadRef

log = logging.getLogger(__name__)

THREAD_NAME_CHARS = 90
ARCHIVE_MINUTES: Literal[60, 1440, 4320, 10080] = 1440


async def post_answer(
    service: ConversationService,
    target: Target,
    reply: Reply,
    *,
    upload_limit: int,
    pending: ThreadRef | None = None,
    title: str = "",
    with_text: bool = True,
) -> discord.Thread | None:
    """Post the reply; with `pending`, open a thread from its first message and move the session."""
    messages = await render(reply, upload_limit=upload_limit, with_text=with_text)
    head = await target.send(messages[0])
    thread = None
    rest: Target = target
    if pending is not None:
        thread = await open_thread(service, head, pending, title)
        if thread is None:
            messages.append(Outgoing(texts.NO_THREAD))
        else:
            rest = ChannelTarget(thread)
    for out in messages[1:]:
        await rest.send(out)
    return thread


def thread_name(prompt: str) -> str:
    """A one-line thread name from the prompt."""
    flat = " ".join(prompt.split())
    if not flat:
        return texts.THREAD_FALLBACK_NAME
    return flat if len(flat) <= THREAD_NAME_CHARS else flat[: THREAD_NAME_CHARS - 1] + "…"


async def open_thread(
    service: ConversationService,
    head: discord.Message | discord.PartialMessage,
    pending: ThreadRef,
    title: str,
) -> discord.Thread | None:
    """Open a thread from `head`, the session already moved in so no early message is missed."""
    # A thread started from a message takes the message's id, so the session can move first.
    future = dataclasses.replace(pending, thread_id=str(head.id))
    await service.move_thread(pending, future)
    try:
        thread = await head.create_thread(
            name=thread_name(title), auto_archive_duration=ARCHIVE_MINUTES
        )
    except discord.HTTPException as exc:
        log.warning("could not open a thread", extra={"status": exc.status, "code": exc.code})
        await service.move_thread(future, pending)
        return None
    opened = thread_ref(thread)
    if opened != future:
        await service.move_thread(future, opened)
    log.info("conversation thread opened", extra={"thread_key": opened.key})
    return thread

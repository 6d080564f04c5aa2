"""A core `Reply` as Discord messages: text chunks, then pictures in groups, then the credits."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import discord

from bots import texts as shared
from bots.discord import texts
from bots.discord.chunks import MESSAGE_LIMIT, split_message
from bots.discord.pictures import CannotFit, fit
from core.models import Reply, ReplyImage

log = logging.getLogger(__name__)

FILES_PER_MESSAGE = 10
TEXT_MESSAGES = 5
"""A longer answer is not posted whole: its beginning, then the whole of it as a file."""
_CUT_MARK = "\n\n[cut at Discord's upload limit]\n"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
_CAPTION_CHARS = 300
_DESCRIPTION_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Upload:
    """One file to attach: bytes, a file name and its alt text."""

    data: bytes
    filename: str
    description: str | None = None


@dataclass(slots=True)
class Outgoing:
    """One Discord message to post."""

    content: str
    uploads: list[Upload] = field(default_factory=list)

    def files(self) -> list[discord.File]:
        """Fresh `discord.File`s (a File is a stream: each send needs its own)."""
        return [
            discord.File(io.BytesIO(up.data), filename=up.filename, description=up.description)
            for up in self.uploads
        ]


async def render(reply: Reply, *, upload_limit: int, with_text: bool = True) -> list[Outgoing]:
    """The messages of a reply; `with_text` False keeps only captions when there are pictures."""
    messages = text_messages(reply.text, upload_limit)
    if reply.images and not with_text:
        messages = []
    if problems := shared.image_problems_line(reply.image_problems, reply.credits):
        messages.append(Outgoing(problems))
    messages.extend(await _pictures(reply.images, upload_limit))
    if not messages:
        messages.append(Outgoing(texts.NO_ANSWER))
    line = shared.credits_line(reply.credits)
    if line:
        last = messages[-1]
        tail = texts.subtext(line)
        if len(last.content) + 1 + len(tail) <= MESSAGE_LIMIT:
            last.content = f"{last.content}\n{tail}".lstrip("\n")
        else:
            messages.append(Outgoing(tail))
    return messages


def text_messages(text: str, upload_limit: int) -> list[Outgoing]:
    """The answer's text in messages; past TEXT_MESSAGES, its beginning and then a note with
    the whole answer attached as a Markdown file."""
    chunks = split_message(text)
    if len(chunks) <= TEXT_MESSAGES:
        return [Outgoing(chunk) for chunk in chunks]
    log.info("long answer attached as a file", extra={"chars": len(text), "chunks": len(chunks)})
    whole = Upload(_within(text, upload_limit), shared.ANSWER_FILE, "The whole answer")
    beginning = [Outgoing(chunk) for chunk in chunks[: TEXT_MESSAGES - 1]]
    return [*beginning, Outgoing(shared.LONG_ANSWER, [whole])]


def _within(text: str, limit: int) -> bytes:
    """The text as UTF-8, cut (on a character boundary, and said so) to at most `limit` bytes."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data
    cut = _CUT_MARK.encode("utf-8")
    return data[: max(limit - len(cut), 0)].decode("utf-8", "ignore").encode("utf-8") + cut


async def _pictures(images: tuple[ReplyImage, ...], limit: int) -> list[Outgoing]:
    """Pictures fitted under `limit`, grouped ≤ 10 per message and ≤ `limit` bytes in total."""
    groups: list[Outgoing] = []
    size = 0
    for image in images:
        try:
            fitted = await fit(image.data, image.filename, limit)
        except CannotFit:
            log.warning("image too large to upload", extra={"bytes": len(image.data)})
            groups.append(Outgoing(texts.not_uploadable(image.filename, limit)))
            size = limit  # nothing joins a text-only message
            continue
        caption = _caption(image.revised_prompt, fitted.note)
        upload = Upload(fitted.data, fitted.filename, _alt(image.revised_prompt))
        current = groups[-1] if groups else None
        if (
            current is None
            or not current.uploads
            or len(current.uploads) >= FILES_PER_MESSAGE
            or size + len(upload.data) > limit
            or len(current.content) + 1 + len(caption) > MESSAGE_LIMIT
        ):
            groups.append(Outgoing(caption, [upload]))
            size = len(upload.data)
        else:
            current.content = f"{current.content}\n{caption}".strip("\n")
            current.uploads.append(upload)
            size += len(upload.data)
    return groups


def _caption(revised_prompt: str | None, note: str | None) -> str:
    parts = []
    if revised_prompt:
        parts.append(f"*{_short(revised_prompt.strip(), _CAPTION_CHARS)}*")
    if note:
        parts.append(texts.fitted(note))
    return "\n".join(parts)


def _alt(revised_prompt: str | None) -> str | None:
    return _short(revised_prompt, _DESCRIPTION_CHARS) if revised_prompt else None


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

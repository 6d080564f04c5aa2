"""Splitting an answer into Discord messages: ≤ 2,000 characters, code fences kept balanced."""

from __future__ import annotations

import re

MESSAGE_LIMIT = 2000
_CLOSE = "\n```"
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*\s")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut `text` on paragraph, line, sentence or word boundaries into chunks of ≤ `limit`.

    A code block cut in two is closed at the end of one chunk and reopened (with its
    language) at the start of the next, so every chunk renders on its own.
    """
    if limit < 40:
        raise ValueError("limit must leave room for fences")
    chunks: list[str] = []
    fence: str | None = None  # the opening line of the block open at the start of `rest`
    rest = text.strip("\n")
    while rest:
        prefix = f"{fence}\n" if fence else ""
        if len(prefix) + len(rest) <= limit and _fence_after(rest, fence) is None:
            chunks.append(prefix + rest.rstrip())
            break
        budget = limit - len(prefix) - len(_CLOSE)
        cut = _cut_point(rest, budget)
        piece = rest[:cut].rstrip()
        after = _fence_after(piece, fence)
        chunk = prefix + piece
        if after is not None:
            chunk += _CLOSE
        if piece.strip():
            chunks.append(chunk)
        fence = after
        rest = rest[cut:].lstrip("\n")
        if fence is None:
            rest = rest.lstrip()
    return chunks


def _cut_point(text: str, budget: int) -> int:
    """The best place to cut `text` at or before `budget` characters."""
    if len(text) <= budget:
        return len(text)
    window = text[:budget]
    paragraph = window.rfind("\n\n")
    if paragraph >= budget // 2:
        return paragraph + 2
    line = window.rfind("\n")
    if line >= budget // 2:
        return line + 1
    sentences = [m.end() for m in _SENTENCE_END.finditer(window)]
    if sentences and sentences[-1] >= budget // 2:
        return sentences[-1]
    space = window.rfind(" ")
    if space >= budget // 4:
        return space + 1
    return budget


def _fence_after(text: str, fence: str | None) -> str | None:
    """Which code block (its opening line) is still open after `text`, given the one before."""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if fence is None:
            fence = line.strip()
        elif line.strip().startswith(match.group(1)[:3]) and not line.strip()[3:].strip("`~"):
            fence = None
    return fence

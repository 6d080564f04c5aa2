"""What the sandbox assistant says: directives in the user's text and deterministic replies."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.state import ApiError

MAX_LONG = 200_000
MAX_SLOW = 120.0
_LONG = re.compile(r"#long=(\d+)", re.IGNORECASE)
_SLOW = re.compile(r"#slow=(\d+(?:\.\d+)?)", re.IGNORECASE)
_NOISE = re.compile(r"#noise\b", re.IGNORECASE)
_WORDS = (
    "The sandbox answers every question with the same careful filler so that tests can "
    "measure how long replies are split, wrapped and delivered. Each sentence is plain "
    "text with ordinary punctuation, and paragraphs are separated by blank lines. "
)


@dataclass(frozen=True)
class Directives:
    """Test directives found in the user's text, and the text without them."""

    text: str
    long: int | None = None
    slow: float = 0.0
    noise: bool = False

    @classmethod
    def parse(cls, raw: str) -> Directives:
        """Find `#long=N`, `#slow=S` and `#noise`; 400 when out of range."""
        long_match, slow_match = _LONG.search(raw), _SLOW.search(raw)
        long = int(long_match.group(1)) if long_match else None
        slow = float(slow_match.group(1)) if slow_match else 0.0
        if long is not None and not 1 <= long <= MAX_LONG:
            raise ApiError(400, f"#long must be between 1 and {MAX_LONG}")
        if slow > MAX_SLOW:
            raise ApiError(400, f"#slow must be at most {MAX_SLOW} seconds")
        text = _NOISE.sub("", _SLOW.sub("", _LONG.sub("", raw)))
        return cls(" ".join(text.split()), long, slow, bool(_NOISE.search(raw)))


def shorten(text: str, limit: int = 60) -> str:
    """Whitespace collapsed and cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def without_directives(raw: str) -> str:
    """The text as a member would read it: test directives taken out."""
    return " ".join(_NOISE.sub("", _SLOW.sub("", _LONG.sub("", raw))).split())


def reply_text(
    turn: int,
    text: str,
    persona: str | None,
    notes: list[tuple[str, str]],
    images_in: int,
    picture: str | None,
    earlier: str | None = None,
) -> str:
    """`Sandbox reply #n: <text>` plus what reached the session: the question asked before in
    it (its memory at work), the persona, developer notes, images in and out."""
    parts = [f"Sandbox reply #{turn}: {text}".rstrip()]
    if earlier:
        parts.append(f"(you asked before: “{shorten(without_directives(earlier))}”)")
    if persona:
        parts.append(f"(persona: {shorten(persona)})")
    parts.extend(f"({role}: {shorten(note)})" for role, note in notes)
    if images_in:
        parts.append(f"(received {images_in} image{'s' if images_in > 1 else ''})")
    if picture:
        parts.append(f"(image: {picture})")
    return " ".join(parts)


def _filler(length: int, start: int = 0) -> str:
    """`length` characters of prose paragraphs, never ending in whitespace."""
    out: list[str] = []
    size, paragraph = 0, start
    while size < length:
        paragraph += 1
        chunk = f"Paragraph {paragraph}. " + _WORDS * 2
        chunk = chunk.rstrip() + "\n\n"
        out.append(chunk)
        size += len(chunk)
    text = "".join(out)[:length]
    return text[:-1] + "." if text and text[-1].isspace() else text


def _code_block(length: int) -> str:
    """A fenced Python block of about `length` characters."""
    lines, size, index = ["```python"], 10, 0
    while size < length - 4:
        line = f"value_{index} = compute({index})  # sandbox line {index}"
        lines.append(line)
        size += len(line) + 1
        index += 1
    lines.append("```")
    return "\n".join(lines)


def long_text(turn: int, length: int) -> str:
    """Exactly `length` characters: paragraphs with a fenced code block in the middle."""
    head = f"Sandbox reply #{turn}: a long answer follows.\n\n"
    if length < 160:
        return (head + _filler(length))[:length]
    code = _code_block(length // 3)
    rest = length - len(head) - len(code) - 4
    before = rest // 2
    return head + _filler(before) + "\n\n" + code + "\n\n" + _filler(rest - before, 100)

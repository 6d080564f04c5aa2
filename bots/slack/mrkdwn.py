"""The model's Markdown as Slack mrkdwn, cut into pieces that fit one section block each."""

from __future__ import annotations

import re

from markdown_to_mrkdwn import SlackMarkdownConverter

# A section block's text may hold 3000 characters; a message with it stays far below the
# 40 000-character message limit.
SECTION_LIMIT = 3000
FENCE = "```"
_FENCE_OPEN = re.compile(r"^(\s*)```[\w+#.-]+\s*$")
# Slack's control characters and their entities: escaped, `<!here>` is only text.
_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_QUOTE_MARK = re.compile(r"^>+")
# `<target>` or `<target|label>`: after escaping, only the converter writes these.
_CONTROL = re.compile(r"<([^<>|\n]*)(?:\|([^<>\n]*))?>")
_WEB_TARGET = re.compile(r"^(?:https?://|mailto:)\S+$", re.IGNORECASE)


def escape(text: str) -> str:
    """Plain text for a Slack message: `&`, `<` and `>` as entities, so nothing in it can
    become a mention (`<!channel>`, `<@U…>`, `<!subteam^…>`) or a link."""
    return text.translate(_ENTITIES)


def to_mrkdwn(markdown: str) -> str:
    """The model's Markdown as mrkdwn that can ping nobody: its text is escaped first, the
    converter (markdown-to-mrkdwn) then writes links, and only web links are kept. Fences
    lose their language tag (Slack would show it)."""
    converted = SlackMarkdownConverter().convert(_escape_lines(markdown))
    safe = _CONTROL.sub(_web_link_or_text, converted)
    return "\n".join(_FENCE_OPEN.sub(r"\1```", line) for line in safe.split("\n"))


def _escape_lines(markdown: str) -> str:
    """Every line escaped, except the `>` that opens a block quote: only `<` starts a control
    sequence, so that one may stay for the converter and Slack to read as a quote."""
    lines = []
    for line in markdown.split("\n"):
        quote = _QUOTE_MARK.match(line)
        mark = quote.group(0) if quote else ""
        lines.append(mark + escape(line[len(mark) :]))
    return "\n".join(lines)


def _web_link_or_text(match: re.Match[str]) -> str:
    """A converted link stays when it leads to the web (or mail); any other target, such as
    `[hi](!channel)` → `<!channel|hi>`, is reduced to its label as plain text."""
    target, label = match.group(1), match.group(2)
    if _WEB_TARGET.match(target):
        return match.group(0)
    return label if label is not None else target


def _is_fence(line: str) -> bool:
    return line.strip().startswith(FENCE)


def _hard_wrap(line: str, width: int) -> list[str]:
    """A line longer than `width`, cut at spaces where possible."""
    pieces: list[str] = []
    while len(line) > width:
        cut = line.rfind(" ", width // 2, width)
        cut = cut if cut > 0 else width
        pieces.append(line[:cut])
        line = line[cut:].lstrip(" ")
    pieces.append(line)
    return pieces


def split_mrkdwn(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, in order; a code block cut in two is closed and
    reopened so every piece renders on its own. Cuts prefer paragraph breaks."""
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    # Room for the closing fence (and the reopening one) added around a cut in code.
    budget = limit - 2 * (len(FENCE) + 1)
    splitter = _Splitter(budget)
    for line in text.split("\n"):
        for piece in _hard_wrap(line, budget):
            splitter.add(piece)
    return splitter.finish()


class _Splitter:
    """Fills chunks line by line, remembering for each line whether it sits inside code."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.chunks: list[str] = []
        self.lines: list[tuple[str, bool]] = []  # (line, inside a code block before it)
        self.in_fence = False

    def size(self) -> int:
        return sum(len(line) + 1 for line, _ in self.lines)

    def add(self, line: str) -> None:
        if self.lines and self.size() + len(line) + 1 > self.budget:
            self.cut()
        self.lines.append((line, self.in_fence))
        if _is_fence(line):
            self.in_fence = not self.in_fence

    def cut(self) -> None:
        if self.in_fence:
            self.emit([line for line, _ in self.lines] + [FENCE])
            self.lines = [(FENCE, False)]
            return
        # The last blank line outside code in the second half: the next piece starts there.
        for index in range(len(self.lines) - 1, len(self.lines) // 2, -1):
            line, inside = self.lines[index]
            if not line.strip() and not inside:
                self.emit([text for text, _ in self.lines[:index]])
                self.lines = self.lines[index + 1 :]
                return
        self.emit([line for line, _ in self.lines])
        self.lines = []

    def emit(self, lines: list[str]) -> None:
        body = "\n".join(lines).strip("\n")
        if body.strip():
            self.chunks.append(body)

    def finish(self) -> list[str]:
        self.emit([line for line, _ in self.lines])
        return self.chunks

"""The Markdown → mrkdwn conversion and the splitter, on their own."""

from __future__ import annotations

from bots.slack.mrkdwn import split_mrkdwn, to_mrkdwn


def test_markdown_becomes_mrkdwn_and_fences_lose_their_language() -> None:
    text = to_mrkdwn("**bold** and [a link](https://example.com)\n\n```python\nx = 1\n```")
    assert "*bold*" in text and "<https://example.com|a link>" in text
    assert "```\nx = 1\n```" in text and "python" not in text


def test_short_text_is_one_piece_and_blank_text_none() -> None:
    assert split_mrkdwn("hello") == ["hello"]
    assert split_mrkdwn("  \n ") == []


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "\n".join(f"line {i:04d} = value" for i in range(400))
    pieces = split_mrkdwn(f"Intro.\n\n```\n{code}\n```\n\nOutro.", limit=1000)
    assert len(pieces) > 5 and all(len(p) <= 1000 for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)
    lines = [line for p in pieces for line in p.split("\n") if line.startswith("line ")]
    assert lines == [f"line {i:04d} = value" for i in range(400)]


def test_prose_is_cut_at_paragraph_breaks_and_long_lines_at_spaces() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 60 for i in range(20)]
    pieces = split_mrkdwn("\n\n".join(p.strip() for p in paragraphs), limit=1000)
    assert all(p.startswith("Paragraph ") for p in pieces)
    one_line = "x" * 50 + " " + "y" * 2500
    pieces = split_mrkdwn(one_line, limit=1000)
    assert "".join(p.replace(" ", "") for p in pieces) == one_line.replace(" ", "")
    assert all(len(p) <= 1000 for p in pieces)


def test_control_characters_are_escaped_and_only_web_links_stay_links() -> None:
    text = to_mrkdwn(
        '> quote <!here>\n\n```html\n<a href="x">&</a>\n```\n\n[hi](!channel) [w](https://w.org)'
    )
    assert text.startswith("> quote &lt;!here&gt;")  # the quote still renders as one
    assert '```\n&lt;a href="x"&gt;&amp;&lt;/a&gt;\n```' in text
    assert text.endswith("hi <https://w.org|w>")

"""Long answers: chunks of at most 2,000 characters, in order, code fences balanced."""

from __future__ import annotations

import random

import pytest

from bots.discord.chunks import split_message
from tests.e2e.discord.conftest import ALICE, Harness, option

FENCE_LINES = ("```", "```python")


def _words(text: str) -> str:
    """The text without fence lines or whitespace: what must survive splitting, in order."""
    kept = [line for line in text.split("\n") if line.strip() not in FENCE_LINES]
    return "".join("".join(kept).split())


def _balanced(chunk: str) -> bool:
    return chunk.count("```") % 2 == 0


async def test_a_5000_character_answer_arrives_in_order_in_balanced_chunks(
    harness: Harness,
) -> None:
    fake = harness.fake
    answer = await harness.answer(await harness.slash("chat", option("prompt", "#long=5000")))
    thread_id = int((await fake.wait_for(fake.threads, what="a thread"))[0]["id"])
    await harness.settle()
    chunks = [answer.content] + [m.content for m in fake.replies(thread_id)]
    assert len(chunks) >= 3
    assert all(len(chunk) <= 2000 for chunk in chunks)
    assert all(_balanced(chunk) for chunk in chunks)
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    said = sessions[0].history[-1].text
    assert len(said) == 5000 and "```python" in said
    body = "\n".join(chunks).rsplit("\n-# ", 1)[0]  # without the credits line
    assert _words(body) == _words(said)
    assert chunks[-1].endswith("-# 1 credit used · 99 left")


def test_short_text_is_one_chunk() -> None:
    assert split_message("hello\n\nworld") == ["hello\n\nworld"]


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 60 for i in range(12)]
    chunks = split_message("\n\n".join(p.strip() for p in paragraphs), limit=1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert all(c.startswith("Paragraph") for c in chunks)


def test_a_code_block_cut_in_two_is_closed_and_reopened_with_its_language() -> None:
    code = "```python\n" + "\n".join(f"x_{i} = {i}" for i in range(300)) + "\n```"
    chunks = split_message(f"Here:\n\n{code}\n\nDone.", limit=500)
    assert len(chunks) > 3 and all(len(c) <= 500 for c in chunks)
    assert all(_balanced(c) for c in chunks)
    assert all(c.startswith("```python\n") for c in chunks[1:-1])
    assert chunks[-1].endswith("Done.")


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    chunks = split_message("a" * 250, limit=100)
    assert [len(c) for c in chunks] == [96, 96, 58]


@pytest.mark.parametrize("seed", range(20))
def test_random_texts_split_within_the_limit_balanced_and_complete(seed: int) -> None:
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randint(5, 40)):
        if rng.random() < 0.3:
            lines = [f"line {rng.randint(0, 99)} = {'z' * rng.randint(0, 120)}" for _ in range(30)]
            parts.append("```python\n" + "\n".join(lines[: rng.randint(1, 30)]) + "\n```")
        else:
            words = ["word" + "x" * rng.randint(0, 12) for _ in range(rng.randint(1, 200))]
            parts.append(" ".join(words) + ".")
    text = "\n\n".join(parts)
    chunks = split_message(text, limit=rng.choice([200, 500, 2000]))
    assert all(len(c) <= max(200, 500, 2000) for c in chunks)
    assert all(_balanced(c) for c in chunks)
    assert _words("\n".join(chunks)) == _words(text)

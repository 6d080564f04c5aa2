"""Odd Samsar answers on Discord: a very long answer is its beginning plus answer.md, and
Samsar's own refusal text is never shown in the channel."""

from __future__ import annotations

from tests.e2e.discord.conftest import ALICE, Harness, option


async def test_a_200000_character_answer_is_its_beginning_and_answer_md(
    harness: Harness,
) -> None:
    fake = harness.fake
    answer = await harness.answer(await harness.slash("chat", option("prompt", "#long=200000")))
    thread_id = int((await fake.wait_for(fake.threads, what="a thread"))[0]["id"])
    await harness.settle()
    posted = [answer, *fake.replies(thread_id)]
    assert len(posted) <= 5  # not 101 messages
    assert all(len(m.content) <= 2000 for m in posted)
    said = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")[0]
    whole = said.history[-1].text
    assert len(whole) == 200_000
    assert answer.content[:500] == whole[:500]  # the beginning, in the first message
    [note] = [m for m in posted if m.files]
    assert note is posted[-1]
    assert "the whole answer is in the attached file answer.md" in note.content
    assert note.content.endswith("-# 1 credit used · 99 left")
    [attachment] = note.payload["attachments"]
    assert attachment["filename"] == "answer.md"
    assert note.files == [whole.encode("utf-8")]


async def test_a_samsar_refusal_is_our_sentence_in_the_channel_not_theirs(
    harness: Harness,
) -> None:
    # The sandbox refuses an out-of-range directive with 400 and its own message.
    reply = await harness.answer(await harness.slash("chat", option("prompt", "#long=999999")))
    assert "#long must be" not in reply.content
    assert reply.content.startswith("Samsar could not accept this request.")
    assert harness.charged(ALICE) == 0

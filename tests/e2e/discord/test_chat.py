"""`/chat` end to end: deferral, answer, thread, the session it carries."""

from __future__ import annotations

import time

from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import ALICE, BOB, Harness, option
from tests.fakes import PNG_1PX


async def test_chat_defers_answers_and_opens_the_conversation_thread(harness: Harness) -> None:
    fake = harness.fake
    started = time.monotonic()
    first = await harness.slash("chat", option("prompt", "hello there"))
    answer = await harness.answer(first)
    state = fake.interaction(first)
    assert state.acknowledged_at is not None and state.acknowledged_at - started < 3
    assert answer.content.startswith("Sandbox reply #1: hello there")
    assert answer.payload["allowed_mentions"] == {"parse": []}
    thread = (await fake.wait_for(fake.threads, what="a thread"))[0]
    assert int(thread["id"]) == int(answer.payload["id"])  # opened from the answer

    await harness.say("and a follow-up", channel_id=int(thread["id"]))
    follow = await fake.wait_for(lambda: fake.replies(int(thread["id"])), what="a thread reply")
    assert follow[0].content.startswith("Sandbox reply #2: and a follow-up")

    second = await harness.slash("chat", option("prompt", "another topic"))
    other = await harness.answer(second)
    assert other.content.startswith("Sandbox reply #1: another topic")
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    assert [s.turns for s in sessions] == [2, 1]
    assert harness.completions() == 3
    assert fake.calls("POST", "/channels/{channel_id}/typing")  # the thread showed typing
    assert any(c.json and c.json.get("type") == 5 for c in fake.requests if c.status == 200)
    assert p.LOADING  # the deferral is the "thinking" state the answer replaced


async def test_a_mention_answers_in_the_channel_and_opens_a_thread(harness: Harness) -> None:
    fake = harness.fake
    asked = await harness.say("what is a samsar?", mention=True)
    reply = (await fake.wait_for(lambda: fake.replies(fake.channel_id), what="an answer"))[0]
    assert reply.content.startswith("Sandbox reply #1: what is a samsar?")
    assert str(reply.payload["message_reference"]["message_id"]) == asked["id"]
    assert reply.payload["allowed_mentions"] == {"parse": [], "replied_user": False}
    thread = (await fake.wait_for(fake.threads, what="a thread"))[0]
    assert thread["id"] == reply.payload["id"]
    await harness.say("go on", channel_id=int(thread["id"]))  # no mention needed inside
    await fake.wait_for(lambda: fake.replies(int(thread["id"])), what="a reply in the thread")
    await harness.say("no mention, no answer")
    await harness.settle()
    assert harness.completions() == 2


async def test_someone_else_in_a_thread_gets_one_hint_and_is_not_billed(harness: Harness) -> None:
    fake = harness.fake
    await harness.answer(await harness.slash("chat", option("prompt", "mine")))
    thread_id = int((await fake.wait_for(fake.threads, what="a thread"))[0]["id"])
    await harness.say("can I join?", who=BOB, channel_id=thread_id)
    await harness.say("hello?", who=BOB, channel_id=thread_id)
    await harness.settle()
    hints = fake.replies(thread_id)
    assert len(hints) == 1 and "belongs to Alice" in hints[0].content
    assert harness.completions() == 1 and harness.charged(BOB) == 0


async def test_a_dm_is_a_conversation_and_reset_starts_a_fresh_one(harness: Harness) -> None:
    fake = harness.fake
    dm = harness.open_dm(ALICE)
    await harness.say("first", channel_id=dm)
    await fake.wait_for(lambda: fake.replies(dm), what="a DM answer")
    await harness.say("second", channel_id=dm)
    await fake.wait_for(lambda: len(fake.replies(dm)) == 2, what="a second DM answer")
    reset = await harness.slash("reset", channel_id=dm)
    assert "fresh conversation" in (await harness.answer(reset)).content
    assert harness.fake.interaction(reset).ephemeral
    await harness.say("third", channel_id=dm)
    third = "Sandbox reply #1: third"  # #1: a new session
    await fake.wait_for(lambda: any(third in m.content for m in fake.replies(dm)), what=third)
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    assert [s.turns for s in sessions] == [2, 1]
    assert not fake.threads()


async def test_bots_system_messages_and_edits_are_ignored(harness: Harness) -> None:
    fake = harness.fake
    dm = harness.open_dm(ALICE)
    await harness.say("I am a bot", who=p.user(p.snowflake(), "otherbot", bot=True), channel_id=dm)
    await harness.say("I am the bot itself", who=fake.bot, channel_id=dm)
    pinned = p.message(p.snowflake(), dm, ALICE, "", kind=6)  # CHANNEL_PINNED_MESSAGE
    await fake.gateway.dispatch("MESSAGE_CREATE", pinned)
    edited = p.message(p.snowflake(), dm, ALICE, "edited text")
    edited["edited_timestamp"] = p.now_iso()
    await fake.gateway.dispatch("MESSAGE_UPDATE", edited)
    await harness.settle()
    assert harness.completions() == 0 and not fake.replies(dm)


async def test_an_attached_image_reaches_samsar_and_other_files_are_skipped(
    harness: Harness,
) -> None:
    fake = harness.fake
    dm = harness.open_dm(ALICE)
    picture = fake.add_attachment(PNG_1PX, "cat.png")
    notes = fake.add_attachment(b"just text", "notes.txt")
    await harness.say("what is this?", channel_id=dm, attachments=[picture, notes])
    answer = (await fake.wait_for(lambda: fake.replies(dm), what="an answer"))[0]
    assert "(received 1 image)" in answer.content
    assert any(r.route == "/cdn/attachments/{attachment_id}/{filename}" for r in fake.requests)


async def test_a_slow_attachment_is_not_overtaken_by_the_next_message_in_the_thread(
    harness: Harness,
) -> None:
    fake = harness.fake
    await harness.answer(await harness.slash("chat", option("prompt", "let's talk")))
    thread_id = int((await fake.wait_for(fake.threads, what="a thread"))[0]["id"])
    slow = fake.add_attachment(PNG_1PX, "cat.png", delay=1.0)  # the CDN takes a second
    first = await harness.say("first, with attachment", channel_id=thread_id, attachments=[slow])
    second = await harness.say("second", channel_id=thread_id)  # at once, text only
    await fake.wait_for(lambda: len(fake.replies(thread_id)) == 2, what="both answers")
    answers = fake.replies(thread_id)
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    asked = [entry.text for entry in sessions[0].history if entry.role == "user"]
    assert asked == ["let's talk", "first, with attachment", "second"]
    answered = [str(a.payload["message_reference"]["message_id"]) for a in answers]
    assert answered == [first["id"], second["id"]]
    assert "(received 1 image)" in answers[0].content


async def test_a_chat_command_with_a_slow_image_keeps_its_place_in_the_thread(
    harness: Harness,
) -> None:
    fake = harness.fake
    await harness.answer(await harness.slash("chat", option("prompt", "let's talk")))
    thread_id = int((await fake.wait_for(fake.threads, what="a thread"))[0]["id"])
    slow = fake.add_attachment(PNG_1PX, "cat.png", delay=1.0)  # the CDN takes a second
    await harness.slash(
        "chat",
        option("prompt", "look at this"),
        option("image", slow["id"], kind=p.ATTACHMENT_OPTION),
        channel_id=thread_id,
        resolved={"attachments": {slow["id"]: slow}},
    )
    await harness.say("and then this", channel_id=thread_id)  # at once, text only
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")

    def asked() -> list[str]:
        return [e.text for e in sessions[0].history if e.role == "user"]

    await fake.wait_for(lambda: len(asked()) == 3, what="three turns")
    assert asked() == ["let's talk", "look at this", "and then this"]

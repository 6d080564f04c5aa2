"""Replays, resumes, rate limits, expired tokens and Samsar failures: once, and never silent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.discord.conftest import ALICE, Harness, option, running_harness

ORIGINAL = "/webhooks/{app_id}/{token}/messages/@original"
CALLBACK = "/interactions/{interaction_id}/{token}/callback"


async def test_a_replayed_interaction_and_message_run_once_and_charge_once(
    harness: Harness,
) -> None:
    fake = harness.fake
    asked = fake.new_interaction("chat", [option("prompt", "only once")], who=ALICE)
    await fake.dispatch_interaction(asked)
    await fake.dispatch_interaction(asked)  # the same INTERACTION_CREATE again
    await harness.answer(asked)
    dm = harness.open_dm(ALICE)
    said = await harness.say("once more", channel_id=dm)
    await fake.gateway.dispatch("MESSAGE_CREATE", said)  # the same MESSAGE_CREATE again
    await harness.settle()
    assert sorted(r.status for r in fake.calls("POST", CALLBACK)) == [200, 400]
    assert len(fake.replies(dm)) == 1
    assert harness.completions() == 2 and harness.charged(ALICE) == 2


async def test_events_replayed_on_resume_are_not_answered_twice(harness: Harness) -> None:
    fake, gateway = harness.fake, harness.fake.gateway
    dm = harness.open_dm(ALICE)
    said = await harness.say("before the blip", channel_id=dm)
    await fake.wait_for(lambda: fake.replies(dm), what="the answer")
    session = gateway.session()
    seq = next(e.seq for e in session.events if e.data is said)
    await gateway.drop(replay_from=seq)  # Discord re-sends from there after RESUME
    await fake.wait_for(lambda: gateway.resumes, what="a RESUME")
    await gateway.wait_connected()
    await harness.say("after the blip", channel_id=dm)
    await fake.wait_for(lambda: len(fake.replies(dm)) == 2, what="the second answer")
    await harness.settle()
    assert session.sent.count(seq) == 2  # the first message really arrived twice
    assert len(gateway.identifies) == 1 and len(fake.replies(dm)) == 2
    assert harness.completions() == 2 and harness.charged(ALICE) == 2


async def test_a_discord_429_is_waited_out_and_nothing_is_billed_again(harness: Harness) -> None:
    fake = harness.fake
    fake.rate_limit_once("PATCH", ORIGINAL, retry_after=0.4)
    answer = await harness.answer(await harness.slash("chat", option("prompt", "patience")))
    assert answer.content.startswith("Sandbox reply #1: patience")
    edits = fake.calls("PATCH", ORIGINAL)
    assert [r.status for r in edits[:2]] == [429, 200]
    assert edits[1].at - edits[0].at >= 0.4
    assert harness.completions() == 1 and harness.charged(ALICE) == 1


async def test_an_answer_after_the_token_expired_goes_to_the_channel(harness: Harness) -> None:
    fake = harness.fake
    harness.sandbox.state.inject("assistant/completion", delay=0.5)
    asked = await harness.slash("chat", option("prompt", "take your time"))
    state = fake.interaction(asked)
    await fake.wait_for(lambda: state.acknowledged_at, what="the deferral")
    fake.expire(asked)  # what 15 minutes would do
    posted = await fake.wait_for(
        lambda: [m for m in fake.replies(fake.channel_id) if "take your time" in m.content],
        what="the answer in the channel",
    )
    assert [r.status for r in fake.calls("PATCH", ORIGINAL)] == [401]
    late = [m for m in fake.replies(fake.channel_id) if "longer than Discord keeps" in m.content]
    assert late and late[0].payload["allowed_mentions"]["users"] == [int(ALICE["id"])]
    thread = (await fake.wait_for(fake.threads, what="a thread"))[0]
    assert thread["id"] == posted[0].payload["id"]
    assert harness.completions() == 1


async def test_out_of_credits_ends_in_a_clear_reply(harness: Harness) -> None:
    fake = harness.fake
    credits = await harness.answer(await harness.slash("credits"))
    assert credits.content == "You have 100 credits."
    assert int(credits.payload["flags"]) & 64  # ephemeral
    harness.sandbox.state.set_credits("discord", f"discord:{ALICE['id']}", 0)
    answer = await harness.answer(await harness.slash("chat", option("prompt", "one more")))
    assert "out of credits" in answer.content and "`/buy <credits>`" in answer.content
    dm = harness.open_dm(ALICE)
    await harness.say("and here?", channel_id=dm)
    reply = (await fake.wait_for(lambda: fake.replies(dm), what="a reply"))[0]
    assert "out of credits" in reply.content
    assert harness.charged(ALICE) == 0


async def test_a_completion_slower_than_the_timeout_is_delivered_later_and_billed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_harness(tmp_path, monkeypatch, completion_timeout=0.5) as harness:
        harness.sandbox.state.inject("assistant/completion", delay=1.5)
        asked = await harness.slash("chat", option("prompt", "hello?"))
        slow = await harness.answer(asked, when=lambda m: "taking longer" in m.content)
        assert "only charged once" in slow.content
        answer = await harness.answer(asked, when=lambda m: "hello?" in m.content)
        assert answer.content.startswith("Sandbox reply #1: hello?")
        await harness.settle()
        # The bot asked again with the same key after its own timeout: Samsar ran the
        # completion once and replayed it; the member paid once.
        calls = harness.sandbox.state.calls_to("assistant/completion")
        assert len(calls) >= 2 and len({c.idempotency_key for c in calls}) == 1
        assert harness.completions() == 1 and harness.charged(ALICE) == 1

"""Members talking to the bot: mentions, thread replies, DMs, other members, noise."""

from __future__ import annotations

from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack
from tests.e2e.slack.fake_records import BOT_ID, BOT_USER
from tests.e2e.slack.payloads import ALICE, BOB, CHANNEL, DM


def sessions_by_question(slack: Slack) -> dict[str, str]:
    """question text → session id."""
    return {
        entry.text: session.session_id
        for session in slack.sandbox.state.sessions.values()
        for entry in session.history
        if entry.role == "user"
    }


async def test_a_mention_is_answered_in_a_thread_under_it(slack: Slack) -> None:
    at = payloads.ts()
    await slack.event(payloads.mention("what is a fox?", at=at))
    await slack.settle()
    [answer] = slack.fake.thread(CHANNEL, at)
    assert answer.section_text().startswith("Sandbox reply #1: what is a fox?")
    assert answer.versions[0] == "_Thinking…_"  # the placeholder it replaced
    assert answer.context_text() == "1 credit used · 999 left"
    assert len(slack.completions()) == 1 and slack.charged(ALICE) == 1


async def test_thread_replies_continue_the_session_and_other_threads_get_their_own(
    slack: Slack,
) -> None:
    root = payloads.ts()
    await slack.event(payloads.mention("first question", at=root))
    await slack.settle()
    await slack.event(payloads.message("follow-up without a mention", thread_ts=root))
    await slack.settle()
    other = payloads.ts()
    await slack.event(payloads.mention("another topic", at=other))
    await slack.settle()
    sessions = sessions_by_question(slack)
    assert sessions["first question"] == sessions["follow-up without a mention"]
    assert sessions["another topic"] != sessions["first question"]
    assert len(slack.fake.thread(CHANNEL, root)) == 2
    assert "Sandbox reply #2" in slack.fake.thread(CHANNEL, root)[1].section_text()


async def test_a_direct_message_starts_a_conversation_in_its_thread(slack: Slack) -> None:
    first = payloads.ts()
    await slack.event(payloads.message("hello in private", channel=DM, at=first))
    await slack.settle()
    await slack.event(payloads.message("and more", channel=DM, thread_ts=first))
    await slack.settle()
    answers = slack.fake.thread(DM, first)
    assert [a.section_text().split(":")[0] for a in answers] == [
        "Sandbox reply #1",
        "Sandbox reply #2",
    ]
    sessions = sessions_by_question(slack)
    assert sessions["hello in private"] == sessions["and more"]


async def test_another_member_in_the_thread_gets_a_private_hint_and_no_bill(
    slack: Slack,
) -> None:
    root = payloads.ts()
    await slack.event(payloads.mention("mine", at=root))
    await slack.settle()
    await slack.event(payloads.message("let me in", user=BOB, thread_ts=root))
    await slack.event(payloads.mention("me too", user=BOB, thread_ts=root))
    await slack.settle()
    hints = [e for e in slack.fake.ephemerals if e["user"] == BOB]
    assert len(hints) == 1  # once per member per thread, however often they write there
    assert all("belongs to Alice" in h["text"] and h["thread_ts"] == root for h in hints)
    assert len(slack.completions()) == 1
    assert slack.sandbox.state.user("slack", f"slack:{payloads.TEAM}:{BOB}") is None
    assert len(slack.fake.thread(CHANNEL, root)) == 1


async def test_bots_edits_deletions_joins_and_chatter_are_ignored(slack: Slack) -> None:
    root = payloads.ts()
    await slack.event(payloads.mention("start", at=root))
    await slack.settle()
    noise = [
        payloads.message("my own answer", user=BOT_USER, thread_ts=root, bot_id=BOT_ID),
        payloads.message("another bot", user="U0OTHERBOT", thread_ts=root, bot_id="B0OTHER"),
        payloads.message("edited", thread_ts=root, subtype="message_changed"),
        payloads.message("", thread_ts=root, subtype="message_deleted"),
        payloads.message("joined", subtype="channel_join"),
        payloads.message("top-level chatter without a mention"),
        payloads.message("a thread that is not ours", thread_ts=payloads.ts()),
    ]
    for payload in noise:
        await slack.event(payload)
    await slack.settle()
    assert len(slack.completions()) == 1
    assert len(slack.fake.calls_to("chat.postMessage")) == 1
    assert slack.fake.ephemerals == []


async def test_two_quick_replies_in_a_thread_are_answered_in_order(slack: Slack) -> None:
    root = payloads.ts()
    await slack.event(payloads.mention("start", at=root))
    await slack.settle()
    await slack.event(payloads.message("first, slowly #slow=0.5", thread_ts=root))
    await slack.event(payloads.message("second", thread_ts=root))  # acked before the first ends
    await slack.settle()
    answers = [m.section_text() for m in slack.fake.thread(CHANNEL, root)]
    assert [a.split(":")[0] for a in answers] == [
        "Sandbox reply #1",
        "Sandbox reply #2",
        "Sandbox reply #3",
    ]
    assert "first, slowly" in answers[1] and "second" in answers[2]

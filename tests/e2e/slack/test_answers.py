"""What lands in the thread: long answers split whole and in order, errors as clear replies."""

from __future__ import annotations

import json

from bots.slack.mrkdwn import SECTION_LIMIT, to_mrkdwn
from sandbox.replies import long_text
from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack
from tests.e2e.slack.payloads import ALICE, CHANNEL

FENCE = "```"


def words(text: str) -> list[str]:
    """The words of a text, fence markers aside (a cut adds a closing and an opening one)."""
    return [word for word in text.split() if word != FENCE]


async def test_an_answer_longer_than_slack_allows_arrives_whole_in_order_split(
    slack: Slack,
) -> None:
    at = payloads.ts()
    await slack.event(payloads.mention("tell me everything #long=12000", at=at))
    await slack.settle()
    pieces = slack.fake.thread(CHANNEL, at)
    assert len(pieces) >= 5
    texts = [piece.section_text() for piece in pieces]
    assert all(len(text) <= SECTION_LIMIT for text in texts)
    # Every piece renders on its own: its code fences are balanced.
    assert all(text.count(FENCE) % 2 == 0 for text in texts)
    assert any(FENCE in text for text in texts)
    expected = to_mrkdwn(long_text(1, 12000))
    assert [w for text in texts for w in words(text)] == words(expected)
    # Only the last piece carries the credits line; the fake saw no refused post.
    assert [bool(piece.context_text()) for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(call.ok for call in slack.fake.calls)


async def test_out_of_credits_is_a_clear_reply_with_the_buy_hint(slack: Slack) -> None:
    await slack.command("credits")  # bootstraps the member
    await slack.settle()
    slack.sandbox.state.set_credits("slack", f"slack:{payloads.TEAM}:{ALICE}", 0)
    at = payloads.ts()
    await slack.event(payloads.mention("one more?", at=at))
    await slack.settle()
    [reply] = slack.fake.thread(CHANNEL, at)
    assert reply.text.startswith("You're out of credits for this")
    assert "Buy more with `/samsar buy &lt;credits&gt;`" in reply.text  # escaped for Slack
    assert slack.charged(ALICE) == 0


async def test_samsar_down_is_a_clear_reply_and_the_next_message_works(slack: Slack) -> None:
    slack.sandbox.state.inject("external_users/session", status=503, times=3)
    at = payloads.ts()
    await slack.event(payloads.mention("anyone there?", at=at))
    await slack.settle()
    [reply] = slack.fake.thread(CHANNEL, at)
    assert reply.text == "Samsar is unavailable right now. Please try again in a few minutes."
    assert reply.versions[0] == "_Thinking…_"  # the placeholder became the error
    again = payloads.ts()
    await slack.event(payloads.mention("and now?", at=again))
    await slack.settle()
    assert slack.fake.thread(CHANNEL, again)[0].section_text().startswith("Sandbox reply")


async def test_model_output_never_pings_and_its_web_links_still_work(slack: Slack) -> None:
    said = (
        "<!channel> <!here> <!everyone> <@U123> <!subteam^S0TEAM> "
        "[hi](!channel) ![x](<!here>) and [docs](https://example.com/?a=1&b=2)"
    )
    at = payloads.ts()
    await slack.event(payloads.mention(said, at=at))
    await slack.settle()
    posts = [c for c in slack.fake.calls if c.method in ("chat.postMessage", "chat.update")]
    posted = [json.dumps([c.params.get("text"), c.params.get("blocks")]) for c in posts]
    assert not any("<!" in text or "<@" in text for text in posted)
    [answer] = slack.fake.thread(CHANNEL, at)
    shown = answer.section_text()
    assert shown.startswith("Sandbox reply #1: &lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt;")
    assert "<https://example.com/?a=1&amp;b=2|docs>" in shown and "(!channel)" not in shown
    [final] = [c for c in posts if "Sandbox reply" in str(c.params.get("text"))]
    assert final.params["parse"] == "none" and final.params["link_names"] is False

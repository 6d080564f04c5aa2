"""Odd Samsar answers on Slack: a very long answer is its beginning plus answer.md, and
Samsar's own refusal text is never posted."""

from __future__ import annotations

from bots.slack.app import slack_client
from bots.slack.mrkdwn import escape
from bots.slack.progress import Place
from bots.slack.render import ANSWER_PIECES, Renderer, beginning
from bots.slack.routes import Sent
from bots.texts import LONG_ANSWER
from core.models import Credits, ImageProblem, Reply
from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack
from tests.e2e.slack.fake_records import BOT_TOKEN
from tests.e2e.slack.fake_slack import running_fake_slack
from tests.e2e.slack.payloads import ALICE, CHANNEL


async def test_a_200000_character_answer_is_its_beginning_and_answer_md(slack: Slack) -> None:
    at = payloads.ts()
    await slack.event(payloads.mention("tell me everything #long=200000", at=at))
    await slack.settle()
    posted = slack.fake.thread(CHANNEL, at)
    assert len(posted) == ANSWER_PIECES  # not 70 messages
    said = slack.sandbox.state.sessions_of("slack", f"slack:{payloads.TEAM}:{ALICE}")[0]
    whole = said.history[-1].text
    assert len(whole) == 200_000
    assert posted[0].section_text()[:300] == escape(whole[:300])
    note = posted[-1]
    assert "the whole answer is in the attached file answer.md" in note.section_text()
    assert note.context_text() == "1 credit used · 999 left"
    [upload] = slack.fake.uploads.values()
    assert (upload.filename, upload.completed) == ("answer.md", True)
    assert (upload.channel, upload.thread_ts) == (CHANNEL, at)
    assert upload.data == whole.encode("utf-8")
    assert all(call.ok for call in slack.fake.calls)


async def test_a_samsar_refusal_is_our_sentence_not_theirs(slack: Slack) -> None:
    at = payloads.ts()
    await slack.event(payloads.mention("#long=999999", at=at))
    await slack.settle()
    [reply] = slack.fake.thread(CHANNEL, at)
    assert "#long must be" not in reply.text
    assert reply.text.startswith("Samsar could not accept this request.")
    assert slack.charged(ALICE) == 0


def test_only_an_answer_past_the_limit_is_cut() -> None:
    pieces = [f"piece {n}" for n in range(ANSWER_PIECES)]
    assert beginning(pieces) == (pieces, False)
    longer = [*pieces, "one more"]
    kept, whole = beginning(longer)
    assert whole is True
    assert kept == [*pieces[: ANSWER_PIECES - 1], escape(LONG_ANSWER)]


async def test_a_picture_that_could_not_be_made_is_said_with_its_cost() -> None:
    async with running_fake_slack() as fake:
        renderer = Renderer(slack_client(BOT_TOKEN, base_url=fake.api_url))
        place = Place(CHANNEL, "1700000000.000100", ALICE)
        reply = Reply(
            "Here is your cat!",
            credits=Credits(charged=6, remaining=94),
            image_problems=(ImageProblem.NOT_MADE,),
        )
        sent = Sent()

        async def save() -> None:
            pass  # no ledger here: the renderer alone

        await renderer.answer(place, reply, sent, save)
        assert sent.pieces == 2
        texts = [m.section_text() for m in fake.thread(CHANNEL, place.thread_ts)]
        assert texts == [
            "Here is your cat!",
            "The image could not be made: Samsar reported a failure. "
            "This answer still used 6 credits.",
        ]
        assert (
            fake.thread(CHANNEL, place.thread_ts)[-1].context_text() == "6 credits used · 94 left"
        )

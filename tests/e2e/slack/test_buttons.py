"""Buttons and Slack's AI surface over the real slack-bolt against the fake Slack: clicks on a
picture's buttons (billed once, in the thread), the edit form, refusals, Try again and Buy
credits, suggested prompts, the thread title, the status line cleared, 👍/👎 kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack, running_slack
from tests.e2e.slack.fake_records import Message
from tests.e2e.slack.payloads import ALICE, BOB, CHANNEL, DM


def picture_answer(slack: Slack, thread_ts: str) -> Message:
    """The last message of the thread that carries a picture's buttons."""
    found = [
        m
        for m in slack.fake.thread(CHANNEL, thread_ts)
        if any(b.get("block_id", "").startswith("samsar_picture_") for b in m.blocks)
    ]
    return found[-1]


def pictures(slack: Slack) -> list[tuple[str, str, str, bool]]:
    [session] = slack.sandbox.state.sessions.values()
    return session.pictures


async def imagined(slack: Slack) -> str:
    """Alice's /samsar imagine in the channel; the thread it answers in."""
    await slack.command("imagine size=1024x1024 a red fox")
    await slack.settle()
    [root] = [m for m in slack.fake.messages if m.thread_ts is None]
    return root.ts


async def test_regenerate_draws_a_fresh_picture_in_the_thread_billed_once(slack: Slack) -> None:
    thread = await imagined(slack)
    answer = picture_answer(slack, thread)
    charged = slack.charged(ALICE)
    click = slack.fake.click(answer, "samsar_regen", user=ALICE)
    await slack.interact(click)
    await slack.interact(click)  # Slack sent the same envelope again
    await slack.settle()
    assert len(slack.fake.uploads) == 2 and slack.charged(ALICE) == 2 * charged
    assert pictures(slack)[-1] == ("1024x1024", "auto", "generate", False)
    fresh = picture_answer(slack, thread)
    assert fresh.ts != answer.ts and all(u.thread_ts == thread for u in slack.fake.uploads.values())


async def test_hd_and_another_size(slack: Slack) -> None:
    thread = await imagined(slack)
    await slack.interact(slack.fake.click(picture_answer(slack, thread), "samsar_hd", user=ALICE))
    await slack.settle()
    resize = slack.fake.click(
        picture_answer(slack, thread), "samsar_size", user=ALICE, option="1536x1024"
    )
    await slack.interact(resize)
    await slack.settle()
    made = pictures(slack)
    assert made[1][:2] == ("1024x1024", "high") and made[2][:2] == ("1536x1024", "high")


async def test_edit_opens_a_form_whose_instruction_edits_the_picture(slack: Slack) -> None:
    thread = await imagined(slack)
    await slack.interact(slack.fake.click(picture_answer(slack, thread), "samsar_edit", user=ALICE))
    [form] = slack.fake.opened_views
    assert len(slack.completions()) == 1  # opening the form costs nothing
    await slack.interact(slack.fake.submit_view(form, "make it night", user=ALICE))
    await slack.settle()
    assert pictures(slack)[-1][2:] == ("edit", True)
    edited = picture_answer(slack, thread)
    assert "Edited the previous image: make it night" in edited.text + str(edited.blocks) or any(
        "make it night" in (u.title or "") for u in slack.fake.uploads.values()
    )
    assert len(slack.completions()) == 2


async def test_someone_elses_click_is_refused_privately_and_not_billed(slack: Slack) -> None:
    thread = await imagined(slack)
    answer = picture_answer(slack, thread)
    await slack.interact(slack.fake.click(answer, "samsar_regen", user=BOB))
    await slack.interact(slack.fake.click(answer, "samsar_edit", user=BOB))
    await slack.settle()
    hints = [e for e in slack.fake.ephemerals if e["user"] == BOB]
    assert len(hints) == 2 and all("is not yours" in h["text"] for h in hints)
    assert len(slack.completions()) == 1 and slack.charged(BOB) == 0
    assert not slack.fake.opened_views


async def test_a_click_after_a_restart_still_works(tmp_path: Path) -> None:
    async with running_slack(tmp_path, "http") as first:
        thread = await imagined(first)
        answer = picture_answer(first, thread)
        fake, sandbox, store = first.fake, first.sandbox, first.store
        async with running_slack(
            tmp_path, "http", fake=fake, sandbox=sandbox, store=store
        ) as again:
            await again.interact(fake.click(answer, "samsar_hd", user=ALICE))
            await again.settle()
            assert len(fake.uploads) == 2


async def test_out_of_credits_carries_a_buy_credits_link(tmp_path: Path) -> None:
    async with running_slack(tmp_path, "socket", start_credits=0) as slack:
        await slack.event(payloads.message("hello", channel=DM))
        await slack.settle()
        [answer] = slack.fake.thread(
            DM, slack.fake.messages[0].thread_ts or slack.fake.messages[0].ts
        )
        [block] = [b for b in answer.blocks if b.get("type") == "actions"]
        [button] = block["elements"]
        assert button["url"].startswith(slack.sandbox.base_url.rsplit("/v1", 1)[0])
        await slack.interact(slack.fake.click(answer, "samsar_buy", user=ALICE))  # only an ack


async def test_a_retryable_failure_carries_try_again_which_answers_once(slack: Slack) -> None:
    slack.sandbox.state.inject("assistant/completion", status=503, times=10)
    at = payloads.ts()
    await slack.event(payloads.message("are you there", channel=DM, at=at))
    await slack.settle()
    [failed] = slack.fake.thread(DM, at)
    slack.sandbox.state.clear_faults()
    await slack.interact(slack.fake.click(failed, "samsar_retry", user=ALICE))
    await slack.settle()
    answers = [m for m in slack.fake.thread(DM, at) if "are you there" in m.section_text()]
    assert len(answers) == 1 and len(slack.completions()) == 1 and slack.charged(ALICE) == 1


async def test_assistant_threads_get_prompts_a_title_feedback_and_a_cleared_status(
    slack: Slack,
) -> None:
    thread_ts = payloads.ts()
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": ALICE, "channel_id": DM, "thread_ts": thread_ts},
    }
    await slack.event(payloads.callback(started))
    await slack.event(
        payloads.message("What is a rainbow, really?", channel=DM, thread_ts=thread_ts)
    )
    await slack.settle()
    prompts = slack.fake.suggested[(DM, thread_ts)]
    assert prompts[0]["title"] == "Draw a picture" and len(prompts) == 3
    assert slack.fake.titles[(DM, thread_ts)] == "What is a rainbow, really?"
    statuses = [c.params["status"] for c in slack.fake.calls_to("assistant.threads.setStatus")]
    assert statuses[-1] == ""  # cleared once the answer is there
    _, answer = slack.fake.thread(DM, thread_ts)
    await slack.interact(slack.fake.click(answer, "samsar_feedback_down", user=ALICE))
    await slack.interact(slack.fake.click(answer, "samsar_feedback_up", user=BOB))  # not theirs
    await slack.settle()
    async with slack.store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT feedback FROM turns WHERE kind = 'ask'"))
        kept = rows.scalars().all()
    assert kept == ["down"]


async def test_a_click_that_fails_unexpectedly_is_told_and_acknowledged(
    slack: Slack, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = await imagined(slack)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(slack.service, "again", broken)
    await slack.interact(slack.fake.click(picture_answer(slack, thread), "samsar_hd", user=ALICE))
    await slack.settle()
    [told] = [e for e in slack.fake.ephemerals if e["user"] == ALICE]
    assert told["text"] == "Something went wrong. Please try again."

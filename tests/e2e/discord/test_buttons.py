"""Buttons under pictures and failures, over the real discord.py against the fake Discord:
a click is a member action billed once, answered in the conversation, refused to others."""

from __future__ import annotations

from typing import Any

from tests.e2e.discord.conftest import ALICE, BOB, Harness, option
from tests.e2e.discord.fake_channels import Stored
from tests.e2e.discord.fake_interactions import DEFERRED_UPDATE, MODAL

LINK = 5


def ids(message: Stored) -> dict[str, dict[str, Any]]:
    """The message's components by custom id (link buttons by label)."""
    items = [item for row in message.payload["components"] for item in row["components"]]
    return {item.get("custom_id") or item["label"]: item for item in items}


def action_id(message: Stored, action: str) -> str:
    [found] = [key for key in ids(message) if key.startswith(f"samsar:{action}:")]
    return found


def pictures(harness: Harness) -> list[tuple[str, str, str, bool]]:
    [session] = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    return session.pictures


async def imagined(harness: Harness, prompt: str = "a red fox") -> tuple[Stored, int]:
    """Alice's /imagine picture (in the channel, a thread opened from it); the thread id."""
    asked = await harness.slash("imagine", option("prompt", prompt), option("size", "1024x1024"))
    answer = await harness.answer(asked)
    thread = (await harness.fake.wait_for(harness.fake.threads, what="a thread"))[0]
    await harness.settle()
    return answer, int(thread["id"])


async def new_pictures(harness: Harness, thread_id: int, count: int) -> list[Stored]:
    fake = harness.fake
    return await fake.wait_for(
        lambda: (
            found if len(found := [m for m in fake.posted(thread_id) if m.files]) >= count else None
        ),
        what=f"{count} pictures in the thread",
    )


async def test_every_picture_has_the_buttons_and_regenerate_draws_once_in_the_thread(
    harness: Harness,
) -> None:
    answer, thread_id = await imagined(harness)
    assert {key.split(":")[1] for key in ids(answer)} == {"regen", "edit", "hd", "size"}
    charged = harness.charged(ALICE)

    click = harness.fake.click(answer, action_id(answer, "regen"), who=ALICE)
    await harness.fake.dispatch_interaction(click)
    await harness.fake.dispatch_interaction(click)  # the gateway delivers it again
    [fresh] = await new_pictures(harness, thread_id, 1)
    await harness.settle()
    assert harness.fake.interaction(click).answer_type == DEFERRED_UPDATE
    assert harness.charged(ALICE) == 2 * charged  # one more picture, billed once
    assert [m for m in harness.fake.posted(thread_id) if m.files] == [fresh]
    assert pictures(harness)[-1] == ("1024x1024", "auto", "generate", False)
    # The new picture has its own buttons, naming its own turn.
    assert action_id(fresh, "regen") != action_id(answer, "regen")


async def test_hd_and_another_size_draw_the_same_prompt_so(harness: Harness) -> None:
    answer, thread_id = await imagined(harness)
    hd = harness.fake.click(answer, action_id(answer, "hd"), who=ALICE)
    await harness.fake.dispatch_interaction(hd)
    [first] = await new_pictures(harness, thread_id, 1)
    resize = harness.fake.click(first, action_id(first, "size"), who=ALICE, values=["1536x1024"])
    await harness.fake.dispatch_interaction(resize)
    await new_pictures(harness, thread_id, 2)
    await harness.settle()
    made = pictures(harness)
    # The size of the HD picture keeps its quality.
    assert made[1][:2] == ("1024x1024", "high") and made[2][:2] == ("1536x1024", "high")


async def test_edit_opens_a_form_whose_instruction_edits_the_picture(harness: Harness) -> None:
    answer, thread_id = await imagined(harness)
    click = harness.fake.click(answer, action_id(answer, "edit"), who=ALICE)
    await harness.fake.dispatch_interaction(click)
    await harness.fake.wait_for(lambda: harness.fake.interaction(click).modal, what="the edit form")
    assert harness.fake.interaction(click).answer_type == MODAL
    assert harness.completions() == 1  # opening the form costs nothing
    sent = harness.fake.submit_form(click, {"instruction": "make it night"}, who=ALICE)
    await harness.fake.dispatch_interaction(sent)
    [edited] = await new_pictures(harness, thread_id, 1)
    await harness.settle()
    assert "Edited the previous image: make it night" in edited.content
    assert pictures(harness)[-1][2:] == ("edit", True)
    assert harness.completions() == 2


async def test_someone_elses_click_is_refused_privately_and_not_billed(harness: Harness) -> None:
    answer, _ = await imagined(harness)
    click = harness.fake.click(answer, action_id(answer, "regen"), who=BOB)
    await harness.fake.dispatch_interaction(click)
    state = harness.fake.interaction(click)
    await harness.fake.wait_for(lambda: state.original, what="the private hint")
    assert state.ephemeral and "belongs to" in state.original.payload["content"]
    await harness.settle()
    assert harness.completions() == 1
    assert harness.charged(BOB) == 0


async def test_a_click_after_a_restart_still_works(harness: Harness, tmp_path: Any) -> None:
    answer, thread_id = await imagined(harness)
    # A new bot process would know nothing but the custom id: drop what this one holds.
    harness.bot._connection._view_store._views.clear()  # type: ignore[attr-defined]
    harness.bot._connection._view_store._modals.clear()  # type: ignore[attr-defined]
    click = harness.fake.click(answer, action_id(answer, "hd"), who=ALICE)
    await harness.fake.dispatch_interaction(click)
    await new_pictures(harness, thread_id, 1)


async def test_out_of_credits_carries_a_buy_button_with_the_checkout_link(
    harness: Harness,
) -> None:
    await harness.answer(await harness.slash("credits"))  # Alice is known to Samsar
    harness.sandbox.state.set_credits("discord", f"discord:{ALICE['id']}", 0)
    answer = await harness.answer(await harness.slash("chat", option("prompt", "hello")))
    [buy] = [item for item in ids(answer).values() if item.get("style") == LINK]
    assert buy["label"] == "Buy credits" and "/checkout/" in buy["url"]
    assert "credits" in answer.content.lower()


async def test_a_retryable_failure_carries_try_again_which_answers_once(
    harness: Harness,
) -> None:
    harness.sandbox.state.inject("assistant/completion", status=503, times=10)
    asked = await harness.slash("chat", option("prompt", "are you there"))
    failed = await harness.answer(asked, within=30)
    retry = action_id(failed, "retry")
    harness.sandbox.state.clear_faults()
    click = harness.fake.click(failed, retry, who=ALICE)
    await harness.fake.dispatch_interaction(click)
    await harness.fake.wait_for(
        lambda: (
            [
                m
                for m in harness.fake.posted(harness.fake.channel_id)
                if "are you there" in m.content
            ]
            or None
        ),
        within=20,
        what="the answer after Try again",
    )
    await harness.settle()
    assert harness.completions() == 1 and harness.charged(ALICE) == 1

"""Every interaction is answered, whatever it is: stale or unknown commands, options of the
wrong type, autocomplete, old buttons and forms, payloads discord.py cannot read; odd messages
are ignored without ending the connection."""

from __future__ import annotations

import logging
import time
from typing import Any

import discord
import pytest

from bots.discord import texts
from bots.discord.cogs.interactions import InteractionsCog
from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import ALICE, INTEGER, Harness, option, sub
from tests.e2e.discord.fake_interactions import AUTOCOMPLETE, COMPONENT, MODAL_SUBMIT, SUGGESTIONS


async def private_answer(harness: Harness, payload: dict[str, Any]) -> str:
    """The text of the private answer to an interaction (its original response, once more
    than "thinking…")."""
    state = harness.fake.interaction(payload)

    def answered() -> Any:
        original = state.original
        return original if original and not int(original.payload["flags"]) & p.LOADING else None

    answer = await harness.fake.wait_for(answered, what="an answer to the interaction")
    assert int(answer.payload["flags"]) & p.EPHEMERAL
    return str(answer.content)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("oldcommand", [], texts.unknown_command("oldcommand")),
        ("persona", [sub("delete")], texts.unknown_command("persona delete")),
        ("buy", [], texts.missing_option("buy", "credits")),
        ("buy", [option("credits", "fifty")], "must be a whole number from 1 to 100,000"),
        ("buy", [option("credits", 0, kind=INTEGER)], "must be a whole number from 1 to 100,000"),
        (
            "buy",
            [option("credits", True, kind=INTEGER)],
            "must be a whole number from 1 to 100,000",
        ),
        ("imagine", [option("prompt", "x"), option("quality", "ultra")], "one of auto, low"),
        ("credits", [option("verbose", "yes")], texts.stale_command("credits")),
        ("persona", [], texts.stale_command("persona")),
        ("chat", [option("prompt", "x"), option("image", "123", kind=11)], "an attached file"),
    ],
    ids=[
        "unknown",
        "unknown-subcommand",
        "missing",
        "string-for-integer",
        "out-of-range",
        "bool-for-integer",
        "not-a-choice",
        "unknown-option",
        "group-without-subcommand",
        "attachment-not-resolved",
    ],
)
async def test_a_command_that_does_not_fit_gets_a_sentence_saying_why(
    harness: Harness, name: str, options: list[dict[str, Any]], expected: str
) -> None:
    said = await private_answer(harness, await harness.slash(name, *options))
    assert expected in said
    await harness.settle()
    assert harness.sandbox.state.calls == []  # nothing ran


async def test_an_attachment_option_discord_py_could_not_read_says_so(harness: Harness) -> None:
    image = option("image", "123", kind=11)
    broken = {"attachments": {"123": {"id": "123"}}}  # no file name, size or URL
    payload = await harness.slash("chat", option("prompt", "x"), image, resolved=broken)
    assert "must be an attached file" in await private_answer(harness, payload)


async def test_autocomplete_gets_an_empty_list(harness: Harness) -> None:
    focused = {**option("prompt", "a ca"), "focused": True}
    payload = await harness.slash("imagine", focused, kind=AUTOCOMPLETE)
    state = harness.fake.interaction(payload)
    await harness.fake.wait_for(lambda: state.answer_type, what="an autocomplete answer")
    assert state.answer_type == SUGGESTIONS and state.suggestions == []


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (COMPONENT, {"custom_id": "regenerate:42", "component_type": 2}, texts.UNKNOWN_COMPONENT),
        (MODAL_SUBMIT, {"custom_id": "feedback", "components": []}, texts.UNKNOWN_FORM),
    ],
    ids=["button", "form"],
)
async def test_an_old_button_or_form_is_answered_privately(
    harness: Harness, kind: int, data: dict[str, Any], expected: str
) -> None:
    message = p.message(p.snowflake(), harness.fake.channel_id, harness.fake.bot, "an old answer")
    payload = await harness.slash("", kind=kind, data=data)
    payload["message"] = message
    assert await private_answer(harness, payload) == expected


def _without_member(payload: dict[str, Any]) -> None:
    del payload["member"]


def _size_as_text(payload: dict[str, Any]) -> None:
    payload["attachment_size_limit"] = "ten megabytes"


def _user_id_as_word(payload: dict[str, Any]) -> None:
    payload["member"] = {**payload["member"], "user": {**ALICE, "id": "alice"}}


@pytest.mark.parametrize("change", [_without_member, _size_as_text, _user_id_as_word])
async def test_an_interaction_discord_py_cannot_read_is_still_answered(
    harness: Harness, caplog: pytest.LogCaptureFixture, change: Any
) -> None:
    payload = harness.fake.new_interaction("credits", [], who=ALICE)
    change(payload)
    await harness.fake.dispatch_interaction(payload)
    assert await private_answer(harness, payload) == texts.UNREADABLE_INTERACTION
    assert all(record.exc_info is None for record in caplog.records)
    # The connection lives on: the next command is answered as usual.
    credits = await private_answer(harness, await harness.slash("credits"))
    assert credits.startswith("You have 100 credits")
    assert len(harness.fake.gateway.identifies) == 1


def _attachment_size_as_text(message: dict[str, Any], harness: Harness) -> None:
    picture = harness.fake.add_attachment(b"\x89PNG", "a.png")
    message["attachments"] = [{**picture, "size": "12"}]


def _content_as_number(message: dict[str, Any], harness: Harness) -> None:
    message["content"] = 42


def _author_id_as_word(message: dict[str, Any], harness: Harness) -> None:
    message["author"] = {**message["author"], "id": "alice"}


def _no_content(message: dict[str, Any], harness: Harness) -> None:
    del message["content"]


@pytest.mark.parametrize(
    "change", [_attachment_size_as_text, _content_as_number, _author_id_as_word, _no_content]
)
async def test_an_odd_message_is_ignored_and_the_connection_lives(
    harness: Harness, caplog: pytest.LogCaptureFixture, change: Any
) -> None:
    fake = harness.fake
    odd = p.message(
        p.snowflake(),
        fake.channel_id,
        ALICE,
        f"<@{fake.bot['id']}> look",
        guild_id=fake.guild_id,
        mentions=[fake.bot],
    )
    change(odd, harness)
    await fake.gateway.dispatch("MESSAGE_CREATE", odd)
    await harness.say("are you still there?", mention=True)
    replies = await fake.wait_for(lambda: fake.replies(fake.channel_id), what="an answer")
    await harness.settle()
    assert [r.content.split("\n")[0] for r in fake.replies(fake.channel_id)] == [
        "Sandbox reply #1: are you still there?"
    ]
    assert replies and harness.completions() == 1 and fake.cdn_fetches == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["discord message ignored"]
    assert all(record.exc_info is None for record in caplog.records)
    assert len(fake.gateway.identifies) == 1


async def test_a_member_with_a_huge_display_name_still_gets_their_credits(
    harness: Harness,
) -> None:
    huge = {**p.user(p.snowflake(), "longname"), "global_name": "Ada " * 25_000}
    credits = await private_answer(harness, await harness.slash("credits", who=huge))
    assert credits.startswith("You have 100 credits")
    [user] = harness.sandbox.state.users.values()
    assert len(user.profile.get("display_name", "")) <= 80


async def test_an_interaction_nothing_answered_gets_the_last_resort_in_time(
    harness: Harness,
) -> None:
    fake = harness.fake
    payload = fake.new_interaction("chat", [option("prompt", "hi")], who=ALICE)
    fake.interaction(payload).dispatched_at = time.monotonic()  # as if just dispatched
    # What discord.py hands every listener; no command runs for it here.
    interaction = discord.Interaction(data=payload, state=harness.bot._connection)
    cog = InteractionsCog(harness.bot, answer_within=0.2)
    await cog.on_interaction(interaction)
    assert await private_answer(harness, payload) == texts.UNEXPECTED
    state = fake.interaction(payload)
    assert state.acknowledged_at is not None and state.dispatched_at is not None
    assert state.acknowledged_at - state.dispatched_at < 3

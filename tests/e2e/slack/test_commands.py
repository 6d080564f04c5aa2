"""`/samsar` subcommands, images in and out, the App Home tab and the assistant surface."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack, running_slack
from tests.e2e.slack.fake_records import BOT_TOKEN
from tests.e2e.slack.payloads import ADA, ALICE, BOB, CHANNEL, DM
from tests.fakes import PNG_1PX

MALLORY = "U0MALLORY"


def private_texts(slack: Slack) -> list[str]:
    """What response_url carried, in order (every one of them ephemeral)."""
    assert all(r["response_type"] == "ephemeral" for r in slack.fake.responses)
    return [r["text"] for r in slack.fake.responses]


async def test_imagine_uploads_the_sandbox_png_into_the_thread(slack: Slack) -> None:
    await slack.command("imagine size=512x384 quality=low a red fox #slow=0.5")
    await slack.settle()
    [root] = [m for m in slack.fake.messages if m.thread_ts is None]
    assert root.text == f"<@{ALICE}> imagines: a red fox #slow=0.5"
    [upload] = slack.fake.uploads.values()
    assert upload.completed and upload.channel == CHANNEL and upload.thread_ts == root.ts
    [session] = slack.sandbox.state.sessions.values()
    assert upload.data == session.last_image
    with Image.open(io.BytesIO(upload.data or b"")) as image:
        assert image.format == "PNG" and image.size == (512, 384)
    assert upload.title and "red fox" in upload.title
    [answer] = slack.fake.thread(CHANNEL, root.ts)
    # The placeholder showed the elapsed time while the image was drawn, then the answer.
    assert answer.versions[0] == "_Thinking…_"
    assert any(v.startswith("_Drawing… ") for v in answer.versions[1:-1])
    assert "credits used" in answer.context_text()


async def test_a_member_image_is_fetched_with_the_bot_token_and_sent_to_samsar(
    slack: Slack,
) -> None:
    file = slack.fake.add_file("cat.png", PNG_1PX)
    at = payloads.ts()
    event = payloads.message("look", channel=DM, at=at, files=[file], subtype="file_share")
    await slack.event(event)
    await slack.settle()
    assert [auth for _, auth in slack.fake.downloads] == [f"Bearer {BOT_TOKEN}"]
    [answer] = slack.fake.thread(DM, at)
    assert "(received 1 image)" in answer.section_text()
    [session] = slack.sandbox.state.sessions.values()
    assert [e.images for e in session.history if e.role == "user"] == [1]


async def test_ask_starts_a_visible_conversation_in_the_channel(slack: Slack) -> None:
    await slack.command("ask what is a fox?")
    await slack.settle()
    [root] = [m for m in slack.fake.messages if m.thread_ts is None]
    assert root.channel == CHANNEL and root.text == f"<@{ALICE}> asks: what is a fox?"
    [answer] = slack.fake.thread(CHANNEL, root.ts)
    assert answer.section_text().startswith("Sandbox reply #1: what is a fox?")
    await slack.event(payloads.message("and a wolf?", thread_ts=root.ts))
    await slack.settle()
    assert len(slack.fake.thread(CHANNEL, root.ts)) == 2 and len(slack.sandbox.state.sessions) == 1


async def test_an_ask_delivered_twice_starts_one_conversation(slack: Slack) -> None:
    form = await slack.command("ask what is a fox?")
    await slack.command("", form=form)  # the same invocation again (a proxy retrying it)
    await slack.settle()
    [root] = [m for m in slack.fake.messages if m.thread_ts is None]
    [answer] = slack.fake.thread(CHANNEL, root.ts)
    assert answer.section_text().startswith("Sandbox reply #1: what is a fox?")
    assert len(slack.completions()) == 1


async def test_an_image_over_the_size_limit_is_refused_before_download(slack: Slack) -> None:
    file = slack.fake.add_file("huge.png", PNG_1PX)
    file["size"] = 9 * 1024 * 1024  # what Slack says the file weighs: above the 8 MB limit
    at = payloads.ts()
    await slack.event(payloads.message("big", channel=DM, at=at, files=[file]))
    await slack.settle()
    assert slack.fake.downloads == [] and slack.completions() == []
    [answer] = slack.fake.thread(DM, at)
    assert answer.text == "The image huge.png is too large: the limit is 8 MB."


async def test_one_oversized_file_refuses_the_message_before_any_file_is_fetched(
    slack: Slack,
) -> None:
    small = slack.fake.add_file("small.png", PNG_1PX)
    huge = slack.fake.add_file("huge.png", PNG_1PX)
    huge["size"] = 9 * 1024 * 1024
    at = payloads.ts()
    await slack.event(payloads.message("two", channel=DM, at=at, files=[small, huge]))
    await slack.settle()
    assert slack.fake.downloads == [] and slack.completions() == []  # not even small.png
    [answer] = slack.fake.thread(DM, at)
    assert answer.text == "The image huge.png is too large: the limit is 8 MB."


async def test_a_file_outside_slack_is_refused_without_a_download(slack: Slack) -> None:
    at = payloads.ts()
    foreign = {
        "id": "F0EVIL",
        "name": "x.png",
        "mimetype": "image/png",
        "size": 10,
        "url_private_download": "http://127.0.0.2:9/evil.png",
    }
    await slack.event(payloads.message("see", channel=DM, at=at, files=[foreign]))
    await slack.settle()
    assert slack.fake.downloads == [] and slack.completions() == []
    [answer] = slack.fake.thread(DM, at)
    assert "not an image I can read" in answer.section_text()


async def test_admin_prompts_are_for_admins_and_reach_the_next_session(slack: Slack) -> None:
    await slack.command("prompt set channel Answer in haiku.", user=BOB)
    await slack.settle()
    assert private_texts(slack) == [
        "Only workspace admins can change the assistant's instructions."
    ]
    await slack.command("prompt set channel Answer in haiku.", user=ADA)
    await slack.settle()
    assert private_texts(slack)[-1].startswith("The channel prompt is set")
    at = payloads.ts()
    await slack.event(payloads.mention("write about foxes", at=at, user=BOB))
    await slack.settle()
    [session] = slack.sandbox.state.sessions.values()
    developer = [e.text for e in session.history if e.role == "developer"]
    assert len(developer) == 1 and "Answer in haiku." in developer[0]
    audit = await slack.store.audit.recent()
    assert [(a.action, a.actor_key) for a in audit] == [
        ("prompt.set", f"slack:{payloads.TEAM}:{ADA}")
    ]


async def test_private_commands_answer_ephemerally(slack: Slack) -> None:
    for text in (
        "credits",
        "buy 50",
        "buy lots",
        "persona set Be terse.",
        "persona show",
        "studio",
        "help",
        "dance",
    ):
        await slack.command(text)
        await slack.settle()
    said = private_texts(slack)
    assert said[0] == "You have 1,000 credits."
    assert said[1].startswith("Buy 50 credits here: <http://127.0.0.1")
    assert said[2] == "Usage: /samsar buy &lt;credits&gt;"  # escaped: not a Slack link
    assert said[3:5] == [
        "Your persona is set; it applies to your next messages.",
        "Your persona: Be terse.",
    ]
    assert said[5].startswith("Your Samsar Studio login link")
    assert "*`/samsar` commands*" in said[6]
    assert "`ask &lt;question&gt;`" in said[6]
    # Only real links may start with "<" in what members read.
    assert all(chunk.startswith("http") for text in said for chunk in text.split("<")[1:])
    assert said[7] == "I don't know `/samsar dance`. Try `/samsar help`."
    assert slack.fake.messages == []  # nothing private was posted in the channel


async def test_reset_starts_the_latest_conversation_afresh(slack: Slack) -> None:
    at = payloads.ts()
    await slack.event(payloads.mention("one", at=at))
    await slack.settle()
    await slack.command("reset")
    await slack.settle()
    await slack.event(payloads.message("ignored: not a conversation any more", thread_ts=at))
    await slack.event(payloads.mention("two", thread_ts=at))
    await slack.settle()
    assert private_texts(slack) == [
        "Done: that conversation starts afresh the next time you mention me in it."
    ]
    assert len(slack.sandbox.state.sessions) == 2 and len(slack.completions()) == 2


async def test_a_command_where_the_bot_is_not_a_member_explains_itself(slack: Slack) -> None:
    slack.fake.not_member.add("C0PRIVATE")
    await slack.command("ask hello?", channel="C0PRIVATE")
    await slack.settle()
    assert "Invite me" in private_texts(slack)[0]
    assert slack.completions() == []


async def test_app_home_shows_credits_and_persona(slack: Slack) -> None:
    event = {"type": "app_home_opened", "user": ALICE, "channel": DM, "tab": "home"}
    await slack.event(payloads.callback(event))
    await slack.settle()
    [published] = slack.fake.views
    text = str(published["view"]["blocks"])
    assert published["user_id"] == ALICE
    assert "You have 1,000 credits." in text and "Your persona:* none" in text


async def test_assistant_threads_show_progress_in_the_status_line(slack: Slack) -> None:
    thread_ts = payloads.ts()
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": ALICE, "channel_id": DM, "thread_ts": thread_ts},
    }
    await slack.event(payloads.callback(started))
    await slack.event(payloads.message("draw slowly #slow=0.5", channel=DM, thread_ts=thread_ts))
    await slack.settle()
    statuses = [c.params["status"] for c in slack.fake.calls_to("assistant.threads.setStatus")]
    assert statuses[0] == "is thinking…" and any(s.startswith("is thinking… ") for s in statuses)
    greeting, answer = slack.fake.thread(DM, thread_ts)
    assert greeting.text.startswith("Hi!") and answer.versions[0].startswith("Sandbox reply #1")


async def test_an_admin_of_another_company_is_not_an_admin_here(slack: Slack) -> None:
    # Slack Connect: users.info says is_admin, but of the guest's own workspace.
    slack.fake.add_user(MALLORY, "Mallory", admin=True, team="T0ELSEWHERE")
    await slack.command("prompt set channel Obey Mallory.", user=MALLORY)
    await slack.settle()
    assert private_texts(slack) == [
        "Only workspace admins can change the assistant's instructions."
    ]
    assert await slack.store.prompts.get("slack", payloads.TEAM, CHANNEL) is None


async def test_reset_after_a_restart_still_finds_the_conversation(
    slack: Slack, tmp_path: Path
) -> None:
    at = payloads.ts()
    await slack.event(payloads.mention("one", at=at))
    await slack.settle()
    # A new bot process on the same database: nothing of the first one's memory survives.
    async with running_slack(
        tmp_path, "socket", fake=slack.fake, sandbox=slack.sandbox, store=slack.store
    ) as restarted:
        await restarted.command("reset")
        await restarted.settle()
        assert private_texts(restarted) == [
            "Done: that conversation starts afresh the next time you mention me in it."
        ]

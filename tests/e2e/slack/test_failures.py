"""Whatever goes wrong, the thread ends with a reply: never a silent "Thinking…"."""

from __future__ import annotations

from pathlib import Path

from bots.slack.app import slack_client
from bots.slack.progress import Place
from bots.slack.render import Renderer
from bots.slack.routes import Sent
from core.models import Reply
from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from storage.store import open_store
from tests.e2e.processes import completion_in_flight
from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack, running_slack
from tests.e2e.slack.fake_records import BOT_TOKEN
from tests.e2e.slack.fake_slack import running_fake_slack
from tests.e2e.slack.payloads import ADA, ALICE, CHANNEL, DM
from tests.fakes import PNG_1PX
from tests.ledger import turn_rows

THINKING = "_Thinking…_"


UNREADABLE = "That attachment is not an image I can read (PNG, JPEG, WebP or GIF)."
GENERIC = "Something went wrong. Please try again."
NOTHING_SAID = "The assistant had nothing to say to that. Try rephrasing?"
EMPTY_COMPLETION = {"id": "resp_empty", "object": "response", "status": "completed", "output": []}


async def test_an_image_download_slower_than_the_fetch_timeout_is_a_clear_reply(
    tmp_path: Path,
) -> None:
    async with running_slack(tmp_path, "http", file_timeout=0.3) as slack:
        file = slack.fake.add_file("slow.png", PNG_1PX)
        slack.fake.stall_download(file["id"])
        at = payloads.ts()
        await slack.event(payloads.message("look", channel=DM, at=at, files=[file]))
        await slack.settle()
        [reply] = slack.fake.thread(DM, at)
        assert reply.versions[0] == THINKING and reply.text == UNREADABLE
        assert slack.completions() == []


async def test_users_info_cut_off_still_answers_as_a_plain_member(slack_http: Slack) -> None:
    fake = slack_http.fake
    fake.drop_connection("users.info", times=10)
    at = payloads.ts()
    await slack_http.event(payloads.mention("are you there?", at=at))
    await slack_http.settle()
    assert {c.status for c in fake.calls_to("users.info")} == {0}  # every try, hung up
    [answer] = fake.thread(CHANNEL, at)
    assert answer.section_text().startswith("Sandbox reply #1: are you there?")


async def test_an_admin_whose_users_info_is_cut_off_is_not_trusted(slack_http: Slack) -> None:
    slack_http.fake.drop_connection("users.info", times=10)
    await slack_http.command("prompt set channel Answer in haiku.", user=ADA)
    await slack_http.settle()
    assert [r["text"] for r in slack_http.fake.responses] == [
        "Only workspace admins can change the assistant's instructions."
    ]


async def test_a_database_failure_mid_turn_replaces_the_placeholder(slack: Slack) -> None:
    # The record reads a member's persona from this table; the run reads the member's whole
    # row, and fails on the column gone.
    async with slack.store.engine.begin() as connection:
        await connection.exec_driver_sql(
            "ALTER TABLE external_users RENAME COLUMN bootstrapped_at TO gone"
        )
    at = payloads.ts()
    await slack.event(payloads.mention("hello?", at=at))
    await slack.settle()
    [reply] = slack.fake.thread(CHANNEL, at)
    assert reply.versions[0] == THINKING and reply.text == GENERIC


async def test_a_database_failure_in_a_command_is_answered(slack: Slack) -> None:
    async with slack.store.engine.begin() as connection:
        await connection.exec_driver_sql("DROP TABLE external_users")
    await slack.command("credits")
    await slack.settle()
    assert [r["text"] for r in slack.fake.responses] == [GENERIC]


async def test_a_turn_cut_off_by_a_shutdown_is_answered_by_the_next_start_once(
    tmp_path: Path,
) -> None:
    async with running_fake_slack() as fake, running_sandbox(SandboxConfig()) as sandbox:
        fake.add_user(ALICE, "Alice")
        store_url = f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}"
        at = payloads.ts()
        async with open_store(store_url) as store:
            async with running_slack(
                tmp_path, "http", fake=fake, sandbox=sandbox, store=store
            ) as first:
                await first.event(payloads.mention("take your time #slow=1.5", at=at))
                await fake.wait_until(lambda: fake.thread(CHANNEL, at))
                await completion_in_flight(sandbox)
                await first.service.worker.drain(0.05)  # the process stops mid-call
            rows = await turn_rows(store.engine)
            assert [r["status"] for r in rows] == ["running"]
            async with running_slack(
                tmp_path, "http", fake=fake, sandbox=sandbox, store=store
            ) as second:
                await second.settle()
        [reply] = fake.thread(CHANNEL, at)
        assert reply.versions[0] == THINKING
        assert reply.section_text().startswith("Sandbox reply #1: take your time")
        calls = sandbox.state.calls_to("assistant/completion")
        assert len({c.idempotency_key for c in calls}) == 1  # the resume asked with the same key
        charged = [c for c in calls if c.status == 200 and not c.replayed]
        assert (
            len(charged) == 1
            and sandbox.state.charged_total("slack", f"slack:{payloads.TEAM}:{ALICE}") == 1
        )


async def test_an_empty_answer_says_so_instead_of_nothing(slack: Slack) -> None:
    slack.sandbox.state.inject("assistant/completion", body=EMPTY_COMPLETION)
    at = payloads.ts()
    await slack.event(payloads.mention("say nothing", at=at))
    await slack.settle()
    [reply] = slack.fake.thread(CHANNEL, at)
    assert reply.versions[0] == THINKING and reply.section_text() == NOTHING_SAID
    assert reply.context_text() == "0 credits used · 1,000 left"


async def test_an_empty_reply_without_credits_still_replaces_the_placeholder() -> None:
    # Samsar always sends credit headers, so this case is driven at the renderer.
    async with running_fake_slack() as fake:
        client = slack_client(BOT_TOKEN, base_url=fake.api_url)
        placeholder = await client.chat_postMessage(channel=DM, thread_ts="1.0", text=THINKING)
        place = Place(DM, "1.0", ALICE)
        sent = Sent(placeholder=str(placeholder["ts"]))

        async def save() -> None:
            pass  # nothing to keep: this test has no ledger

        await Renderer(client).answer(place, Reply(text=" \n"), sent, save)
        [reply] = fake.thread(DM, "1.0")
        assert reply.versions == [THINKING, NOTHING_SAID] and reply.context_text() == ""

"""Durable turns, as an operator's process manager would test them: `samsar-bot run` as a real
subprocess (the real discord.py and slack-bolt inside), killed or stopped mid-turn, restarted.

Every acknowledged member action ends answered once and billed once, without the platform
delivering the event again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bots.slack.routes import Sent
from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from storage.engine import create_engine
from tests.e2e.discord import payloads as dp
from tests.e2e.discord.conftest import ALICE as D_ALICE
from tests.e2e.discord.conftest import option
from tests.e2e.discord.fake_discord import FakeDiscord, Stored
from tests.e2e.processes import BotProcess, Setup, bot_process, completion_in_flight
from tests.e2e.slack import payloads as sp
from tests.e2e.slack.fake_slack import running_fake_slack
from tests.e2e.slack.payloads import ALICE as S_ALICE
from tests.e2e.slack.payloads import CHANNEL
from tests.integration.conftest import PG_URL, needs_postgres
from tests.ledger import wait_for_turns

TAKING_DISCORD = "taking turns platform='discord'"
TAKING_SLACK = "taking turns platform='slack'"
ORIGINAL = "/webhooks/{app_id}/{token}/messages/@original"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """The sandbox, the fake Discord and the fake Slack, and a SQLite file, in this process."""
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(running_sandbox(SandboxConfig()))
        discord = FakeDiscord()
        await stack.enter_async_context(discord.running())
        slack = await stack.enter_async_context(running_fake_slack())
        slack.add_user(S_ALICE, "Alice")
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        yield Setup(sandbox, url, tmp_path, discord=discord, slack=slack)


def completions(setup: Setup) -> list[object]:
    """Completions Samsar ran (200, not a replay of an earlier one)."""
    calls = setup.sandbox.state.calls_to("assistant/completion")
    return [c for c in calls if c.status == 200 and not c.replayed]


def charged_discord(setup: Setup) -> int:
    return setup.sandbox.state.charged_total("discord", f"discord:{D_ALICE['id']}")


def charged_slack(setup: Setup) -> int:
    return setup.sandbox.state.charged_total("slack", f"slack:{sp.TEAM}:{S_ALICE}")


async def in_flight(setup: Setup) -> None:
    """Until the sandbox is working on a completion it has not answered yet."""
    await completion_in_flight(setup.sandbox)


async def ledger_shows(setup: Setup, statuses: list[str]) -> None:
    """Until the ledger's turns have these statuses, oldest first."""
    engine = create_engine(setup.database_url)
    try:
        await wait_for_turns(
            engine, lambda rows: [r["status"] for r in rows] == statuses, within=30
        )
    finally:
        await engine.dispose()


async def answer_of(fake: FakeDiscord, payload: dict[str, object], text: str) -> Stored:
    """The interaction's original response once it holds `text`."""
    state = fake.interaction(payload)

    def done() -> Stored | None:
        original = state.original
        if original is None or int(original.payload["flags"]) & dp.LOADING:
            return None
        return original if text in original.content else None

    found: Stored = await fake.wait_for(done, 30, f"an answer holding {text!r}")
    return found


async def started(bot: BotProcess, *texts: str, count: int = 1) -> None:
    for line in texts:
        await bot.wait_for_log(line, count=count)


async def gateway_up(fake: FakeDiscord, identifies: int = 1) -> None:
    """Until the bot has identified `identifies` times and is connected: an event dispatched
    before that would reach no one (Discord does not replay it to a new session either)."""
    await fake.wait_for(lambda: len(fake.gateway.identifies) >= identifies, 30, "an IDENTIFY")
    await fake.gateway.wait_connected(within=30)


async def test_discord_sigkill_mid_completion_is_answered_once_after_restart(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.discord
    assert fake is not None
    log = tmp_path / "bot.log"
    async with bot_process(setup, log) as bot:
        await started(bot, TAKING_DISCORD, TAKING_SLACK)
        await gateway_up(fake)
        asked = fake.new_interaction("chat", [option("prompt", "slow one #slow=2")], who=D_ALICE)
        await fake.dispatch_interaction(asked)
        await in_flight(setup)
        await bot.kill()  # kill -9 one moment into the completion
        assert fake.interaction(asked).acknowledged_at is not None  # it was acknowledged
        restarted = BotProcess(setup, log)
        await restarted.start()
        try:
            answer = await answer_of(fake, asked, "slow one")
            assert answer.content.startswith("Sandbox reply #1: slow one")
            await ledger_shows(setup, ["delivered"])
        finally:
            await restarted.kill()
    assert len(completions(setup)) == 1 and charged_discord(setup) == 1
    edits = [r for r in fake.calls("PATCH", ORIGINAL) if r.status == 200]
    assert len(edits) == 1  # posted once


async def test_slack_sigkill_mid_completion_replaces_the_placeholder_once(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.slack
    assert fake is not None
    log = tmp_path / "bot.log"
    at = sp.ts()
    event = sp.mention("slow one #slow=2", at=at)
    async with bot_process(setup, log) as bot:
        await started(bot, TAKING_SLACK)
        await fake.socket.connected()
        envelope = await fake.socket.send("events_api", event)
        await fake.wait_until(lambda: envelope in fake.socket.acks)
        await fake.wait_until(lambda: fake.thread(CHANNEL, at))  # "Thinking…" is up
        await in_flight(setup)
        await bot.kill()
    async with bot_process(setup, log) as again:
        await started(again, TAKING_SLACK, count=2)
        await fake.socket.connected()
        # Slack delivers the same event again after the restart: it must not run twice.
        retried = await fake.socket.send("events_api", event, retry_attempt=1)
        await fake.wait_until(lambda: retried in fake.socket.acks)
        await fake.wait_until(
            lambda: any("Sandbox reply" in m.section_text() for m in fake.thread(CHANNEL, at)),
            within=30,
        )
        await ledger_shows(setup, ["delivered"])
    [reply] = fake.thread(CHANNEL, at)
    assert reply.versions[0] == "_Thinking…_"  # the placeholder of the first process, replaced
    assert reply.section_text().startswith("Sandbox reply #1: slow one")
    assert len(completions(setup)) == 1 and charged_slack(setup) == 1


async def _killed_before_the_placeholder_was_kept(setup: Setup, tmp_path: Path, at: str) -> None:
    """A slow mention answered by a bot that dies between posting "Thinking…" and keeping its
    ts in the ledger (made here by taking the kept ts away before the kill), then by another."""
    fake = setup.slack
    assert fake is not None
    log = tmp_path / "bot.log"
    engine = create_engine(setup.database_url)
    try:
        async with bot_process(setup, log) as bot:
            await started(bot, TAKING_SLACK)
            await fake.socket.connected()
            envelope = await fake.socket.send("events_api", sp.mention("slow one #slow=2", at=at))
            await fake.wait_until(lambda: envelope in fake.socket.acks)
            await in_flight(setup)
            await wait_for_turns(engine, lambda rows: bool(rows and rows[0]["posted"]))
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE turns SET posted = ''"))
            await bot.kill()
        async with bot_process(setup, log) as again:
            await started(again, TAKING_SLACK, count=2)
            await fake.wait_until(
                lambda: any("Sandbox reply" in m.section_text() for m in fake.thread(CHANNEL, at)),
                within=30,
            )
            await ledger_shows(setup, ["delivered"])
    finally:
        await engine.dispose()
    assert len(completions(setup)) == 1 and charged_slack(setup) == 1


async def test_slack_sigkill_before_the_placeholder_was_kept_takes_that_placeholder_over(
    setup: Setup, tmp_path: Path
) -> None:
    # The turn, run again, finds that placeholder by the turn id it carries, and answers in it.
    assert setup.slack is not None
    at = sp.ts()
    await _killed_before_the_placeholder_was_kept(setup, tmp_path, at)
    [reply] = setup.slack.thread(CHANNEL, at)  # one message: no "Thinking…" left behind
    assert reply.versions[0] == "_Thinking…_"
    assert reply.section_text().startswith("Sandbox reply #1: slow one")


async def test_slack_a_placeholder_not_found_again_costs_a_second_one_and_nothing_else(
    setup: Setup, tmp_path: Path
) -> None:
    # The look for it refused (a token without the history scopes): a new placeholder, the
    # answer in it, once; the earlier one stays as it was.
    fake = setup.slack
    assert fake is not None
    fake.fail("conversations.replies", 5, "missing_scope")
    at = sp.ts()
    await _killed_before_the_placeholder_was_kept(setup, tmp_path, at)
    assert [call.method for call in fake.calls].count("conversations.replies") == 1
    left, answer = fake.thread(CHANNEL, at)
    assert left.versions[0] == "_Thinking…_" and "Sandbox reply" not in left.section_text()
    assert answer.section_text().startswith("Sandbox reply #1: slow one")


async def test_slack_sigkill_before_a_note_of_waiting_was_kept_answers_in_that_note(
    setup: Setup, tmp_path: Path
) -> None:
    # A turn behind a running one shows that it waits; the process dies between posting that
    # note and keeping its ts (made here by putting back what was kept before the post). The
    # turn, when it runs, finds the note by the turn id it carries and answers in it.
    fake = setup.slack
    assert fake is not None
    root = sp.ts()
    engine = create_engine(setup.database_url)
    log = tmp_path / "bot.log"
    try:
        async with bot_process(setup, log) as bot:
            await started(bot, TAKING_SLACK)
            await fake.socket.connected()
            for event in (
                sp.mention("slow one #slow=3", at=root),
                sp.message("and then?", thread_ts=root),
            ):
                envelope = await fake.socket.send("events_api", event)
                await fake.wait_until(lambda e=envelope: e in fake.socket.acks)
            rows = await wait_for_turns(  # the note is up, and its ts kept
                engine,
                lambda rows: len(rows) == 2 and Sent.load(rows[1]["posted"]).placeholder,
            )
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE turns SET posted = :sent WHERE turn_id = :id"),
                    {"sent": Sent(pending=True).dump(), "id": rows[1]["turn_id"]},
                )
            await bot.kill()
        async with bot_process(setup, log) as again:
            await started(again, TAKING_SLACK, count=2)
            await ledger_shows(setup, ["delivered", "delivered"])
    finally:
        await engine.dispose()
    first, second = fake.thread(CHANNEL, root)  # no note of waiting left behind
    assert first.section_text().startswith("Sandbox reply #1: slow one")
    assert second.versions[0] == "Waiting for the previous answer in this conversation…"
    assert second.section_text().startswith("Sandbox reply #2: and then?")


async def test_sigkill_after_samsar_answered_delivers_the_stored_reply_without_a_second_call(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.discord
    assert fake is not None
    log = tmp_path / "bot.log"
    # The answer's post waits (not a progress edit that may come first): kill meanwhile.
    fake.rate_limit_once(
        "PATCH", ORIGINAL, retry_after=30, when=lambda body: "Sandbox" in str(body.json)
    )
    async with bot_process(setup, log) as bot:
        await started(bot, TAKING_DISCORD)
        await gateway_up(fake)
        asked = fake.new_interaction("chat", [option("prompt", "answered")], who=D_ALICE)
        await fake.dispatch_interaction(asked)
        await ledger_shows(setup, ["completed"])
        await bot.kill()
    async with bot_process(setup, log) as again:
        await started(again, TAKING_DISCORD, count=2)
        answer = await answer_of(fake, asked, "answered")
    assert answer.content.startswith("Sandbox reply #1: answered")
    calls = setup.sandbox.state.calls_to("assistant/completion")
    assert len(calls) == 1  # delivered from the ledger: Samsar was not asked again
    assert charged_discord(setup) == 1


async def test_sigterm_mid_completion_finishes_the_turn_then_exits_0(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.slack
    assert fake is not None
    at = sp.ts()
    async with bot_process(setup, tmp_path / "bot.log") as bot:
        await started(bot, TAKING_SLACK)
        await fake.socket.connected()
        envelope = await fake.socket.send("events_api", sp.mention("finish me #slow=1.5", at=at))
        await fake.wait_until(lambda: envelope in fake.socket.acks)
        await in_flight(setup)
        bot.send(signal.SIGTERM)
        assert await bot.wait() == 0, bot.log()[-3000:]
    [reply] = fake.thread(CHANNEL, at)
    assert reply.section_text().startswith("Sandbox reply #1: finish me")
    assert len(completions(setup)) == 1 and charged_slack(setup) == 1
    assert "draining turns" in bot.log()


async def test_a_second_signal_exits_at_once_and_the_turn_is_resumed_later(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.slack
    assert fake is not None
    log = tmp_path / "bot.log"
    at = sp.ts()
    async with bot_process(setup, log) as bot:
        await started(bot, TAKING_SLACK)
        await fake.socket.connected()
        envelope = await fake.socket.send("events_api", sp.mention("long one #slow=3", at=at))
        await fake.wait_until(lambda: envelope in fake.socket.acks)
        await in_flight(setup)
        bot.send(signal.SIGTERM)
        await bot.wait_for_log("stopping: finishing running turns")
        bot.send(signal.SIGINT)
        assert await bot.wait(within=5) != 0
    async with bot_process(setup, log) as again:
        await started(again, TAKING_SLACK, count=2)
        await fake.wait_until(
            lambda: any("Sandbox reply" in m.section_text() for m in fake.thread(CHANNEL, at)),
            within=30,
        )
    assert len(completions(setup)) == 1 and charged_slack(setup) == 1


async def test_a_crashed_platform_is_restarted_while_the_other_keeps_answering(
    setup: Setup, tmp_path: Path
) -> None:
    discord, slack = setup.discord, setup.slack
    assert discord is not None and slack is not None
    async with bot_process(setup, tmp_path / "bot.log") as bot:
        await started(bot, TAKING_DISCORD, TAKING_SLACK)
        await slack.socket.connected()
        # Connected first: a close sent before the bot's IDENTIFY would reach no connection.
        await gateway_up(discord)
        await discord.gateway.close_with(4012)  # discord.py cannot go on: its runner raises
        at = sp.ts()
        envelope = await slack.socket.send("events_api", sp.mention("still here?", at=at))
        await slack.wait_until(lambda: envelope in slack.socket.acks)
        await slack.wait_until(
            lambda: any("Sandbox reply" in m.section_text() for m in slack.thread(CHANNEL, at)),
            within=30,
        )
        await bot.wait_for_log("platform failed; restarting")
        await started(bot, TAKING_DISCORD, count=2)  # Discord came back
        await gateway_up(discord, identifies=2)  # identified again
        asked = discord.new_interaction("chat", [option("prompt", "back?")], who=D_ALICE)
        await discord.dispatch_interaction(asked)
        await answer_of(discord, asked, "back?")
        assert bot.running


async def test_a_refused_token_stops_only_its_platform(setup: Setup, tmp_path: Path) -> None:
    slack = setup.slack
    assert slack is not None
    extra = {"DISCORD_TOKEN": "not-the-token"}
    async with bot_process(setup, tmp_path / "bot.log", extra) as bot:
        await bot.wait_for_log("platform cannot run; it stays off")
        await started(bot, TAKING_SLACK)
        await slack.socket.connected()
        at = sp.ts()
        await slack.socket.send("events_api", sp.mention("hello", at=at))
        await slack.wait_until(
            lambda: any("Sandbox reply" in m.section_text() for m in slack.thread(CHANNEL, at)),
            within=30,
        )
        assert bot.running


async def test_every_platform_refused_ends_the_process_with_one_line(
    setup: Setup, tmp_path: Path
) -> None:
    setup.slack = None
    async with bot_process(setup, tmp_path / "bot.log", {"DISCORD_TOKEN": "nope"}) as bot:
        assert await bot.wait() == 2
    assert "Every platform stopped for good (discord)" in bot.log()
    assert "Traceback" not in bot.log()


@needs_postgres
async def test_two_replicas_on_postgres_one_killed_mid_turn_the_other_resumes_it_once(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.slack
    assert fake is not None
    async with postgres_database() as url:
        setup.database_url = url
        at = sp.ts()
        async with bot_process(setup, tmp_path / "a.log") as first:
            await started(first, TAKING_SLACK)
            await fake.socket.connected()
            envelope = await fake.socket.send("events_api", sp.mention("slow #slow=5", at=at))
            await fake.wait_until(lambda: envelope in fake.socket.acks)
            await in_flight(setup)
            async with bot_process(setup, tmp_path / "b.log") as second:
                await started(second, TAKING_SLACK)
                await first.kill()
                await fake.wait_until(
                    lambda: any(
                        "Sandbox reply" in m.section_text() for m in fake.thread(CHANNEL, at)
                    ),
                    within=30,
                )
                await ledger_shows(setup, ["delivered"])
                assert "turn resumed" in second.log()
    [reply] = fake.thread(CHANNEL, at)
    assert reply.versions[0] == "_Thinking…_" and len(completions(setup)) == 1
    assert charged_slack(setup) == 1


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database of its own (the bot processes migrate it), dropped after."""
    assert PG_URL is not None
    name = f"test_replicas_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


async def test_picture_workers_start_with_the_bot_and_go_when_it_is_killed(
    setup: Setup, tmp_path: Path
) -> None:
    async with bot_process(setup, tmp_path / "bot.log") as bot:
        await started(bot, TAKING_SLACK)
        # Before any picture: the first member to get one waits for no worker to start.
        async with asyncio.timeout(30):
            while not (workers := children(bot.pid)):  # noqa: ASYNC110 (polling /proc)
                await asyncio.sleep(0.05)
        bot.send(signal.SIGKILL)
        await bot.wait()
    async with asyncio.timeout(10):  # their parent gone, they end too
        while alive(workers):  # noqa: ASYNC110 (polling /proc)
            await asyncio.sleep(0.05)


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (not gone, nor exited and waiting to be reaped)."""
    running = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X"):
                running.add(pid)
    return running

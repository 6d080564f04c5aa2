"""Slack served by two replicas on one PostgreSQL database, each event delivered to both: over
HTTP, as a load balancer that retries on the other replica; over Socket Mode, as Slack sending
an event again on the app's other connection. Every event is answered once and billed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from storage.engine import create_engine
from tests.e2e.processes import BotProcess, Setup, bot_process, free_port
from tests.e2e.slack import payloads as sp
from tests.e2e.slack.fake_records import SIGNING_SECRET, TEAM, Message
from tests.e2e.slack.fake_slack import FakeSlack, json_body, post_signed, running_fake_slack
from tests.e2e.test_durable_process import (
    TAKING_SLACK,
    completions,
    postgres_database,
)
from tests.integration.conftest import needs_postgres
from tests.ledger import OPEN, wait_for_turns

LISTENING = {"http": "slack http listening", "socket": "slack socket mode connected"}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(running_sandbox(SandboxConfig()))
        slack = await stack.enter_async_context(running_fake_slack())
        slack.add_user(sp.ALICE, "Alice")
        url = await stack.enter_async_context(postgres_database())
        yield Setup(sandbox, url, tmp_path, slack=slack)


class Replicas:
    """The two replicas and how an event reaches both of them at once."""

    def __init__(self, transport: str, fake: FakeSlack, ports: list[int]) -> None:
        self.transport = transport
        self.fake = fake
        self.ports = ports

    async def both(self, payload: dict[str, Any]) -> None:
        """Deliver `payload` to both replicas at the same moment (the second as a retry) and
        wait until both acknowledged it."""
        if self.transport == "http":
            body = json_body(payload)
            answers = await asyncio.gather(
                *(
                    post_signed(
                        f"http://127.0.0.1:{port}/slack/events",
                        body,
                        content_type="application/json",
                        retry_num=attempt or None,
                    )
                    for attempt, port in enumerate(self.ports)
                )
            )
            assert [status for status, _ in answers] == [200, 200]
            return
        connections = [ws for ws in self.fake.socket.connections if not ws.closed]
        assert len(connections) == 2
        envelopes = await asyncio.gather(
            *(
                self.fake.socket.send(
                    "events_api", payload, retry_attempt=attempt, connection=connection
                )
                for attempt, connection in enumerate(connections)
            )
        )
        await self.fake.wait_until(lambda: all(e in self.fake.socket.acks for e in envelopes))


async def ledger(url: str) -> list[dict[str, Any]]:
    """The ledger's rows once none is open."""
    engine = create_engine(url)
    try:
        return await wait_for_turns(
            engine, lambda rows: not any(r["status"] in OPEN for r in rows), within=30
        )
    finally:
        await engine.dispose()


def answered(fake: FakeSlack, channel: str, thread_ts: str, marker: str) -> Callable[[], bool]:
    return lambda: any(
        "Sandbox reply" in m.section_text() and marker in m.section_text()
        for m in fake.thread(channel, thread_ts)
    )


def answers(posts: list[Message]) -> list[str]:
    return [m.section_text() for m in posts if "Sandbox reply" in m.section_text()]


@needs_postgres
@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_two_replicas_given_the_same_events_answer_and_bill_each_once(
    setup: Setup, tmp_path: Path, transport: str
) -> None:
    fake = setup.slack
    assert fake is not None
    ports = [free_port(), free_port()]
    async with AsyncExitStack() as stack:
        bots: list[BotProcess] = []
        for name, port in zip("ab", ports, strict=True):
            extra = {"MEMBER_TURNS_PER_MINUTE": "0"}
            if transport == "http":
                extra |= {
                    "SLACK_APP_TOKEN": "",  # unset: HTTP on SLACK_PORT
                    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                    "SLACK_PORT": str(port),
                }
            bot = await stack.enter_async_context(
                bot_process(setup, tmp_path / f"{name}.log", extra)
            )
            await bot.wait_for_log(TAKING_SLACK)
            await bot.wait_for_log(LISTENING[transport])
            bots.append(bot)
        replicas = Replicas(transport, fake, ports)

        root, dm_at, assistant_ts = sp.ts(), sp.ts(), sp.ts()
        await replicas.both(sp.mention("first question", at=root))
        await fake.wait_until(answered(fake, sp.CHANNEL, root, "first question"), within=30)
        await replicas.both(sp.message("second question", thread_ts=root))
        await replicas.both(sp.message("a direct one", channel=sp.DM, at=dm_at))
        started = {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": sp.ALICE,
                "channel_id": sp.DM,
                "thread_ts": assistant_ts,
            },
        }
        await replicas.both(sp.callback(started))
        await fake.wait_until(answered(fake, sp.CHANNEL, root, "second question"), within=30)
        await fake.wait_until(answered(fake, sp.DM, dm_at, "a direct one"), within=30)
        await fake.wait_until(lambda: fake.thread(sp.DM, assistant_ts), within=30)
        rows = await ledger(setup.database_url)
        logs = [bot.log() for bot in bots]

    thread = fake.thread(sp.CHANNEL, root)
    assert len(thread) == 2, [m.versions for m in thread]  # two answers, no placeholder left
    assert "first question" in answers(thread)[0] and "second question" in answers(thread)[1]
    assert len(answers(fake.thread(sp.DM, dm_at))) == 1
    assert len(fake.thread(sp.DM, assistant_ts)) == 1  # one greeting
    assert [r["status"] for r in rows] == ["delivered"] * 4  # three turns, the greeting noted
    assert len(completions(setup)) == 3
    assert setup.sandbox.state.charged_total("slack", f"slack:{TEAM}:{sp.ALICE}") == 3
    # Each event was taken by one replica; the other dropped its copy as a duplicate.
    assert sum(log.count("duplicate event dropped") for log in logs) == 4

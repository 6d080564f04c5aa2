"""The chaos run: two `samsar-bot run` replicas on one PostgreSQL database serve Slack over
Socket Mode while one of them is SIGKILLed every few seconds and restarted. Events go to either
replica, and an envelope that is not acknowledged is sent again (as Slack retries it).

What must hold: every acknowledged turn is answered exactly once, in its thread's order, Samsar
ran each turn once (0 double charges), no placeholder is left "Thinking…" and no answer is
posted twice. `make chaos` runs it with the report printed (counts, longest recovery)."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from tests.e2e.processes import BotProcess, Setup
from tests.e2e.slack import payloads as sp
from tests.e2e.slack.fake_records import Message
from tests.e2e.slack.fake_slack import FakeSlack, running_fake_slack
from tests.e2e.test_durable_process import TAKING_SLACK, postgres_database
from tests.integration.conftest import needs_postgres
from tests.ledger import turn_rows

THREADS, TURNS = 50, 4  # 200 turns
MEMBERS = (sp.ALICE, sp.BOB, sp.ADA)
KILL_EVERY = (2.0, 4.0)  # seconds between kills, drawn at random
ACK_WAIT = 4.0  # an envelope not acknowledged by then is sent again, as Slack does
SEED = 20261203
_ANSWER = re.compile(r"Sandbox reply #\d+: (chaos-\d+-\d+)\b")


@dataclass
class Turn:
    """One member message of the run and what happened to it."""

    thread: int
    index: int
    member: str
    root: str = ""
    sent_at: float = 0.0
    acked_at: float | None = None
    answered_at: float | None = None
    deliveries: int = 0

    @property
    def marker(self) -> str:
        return f"chaos-{self.thread:02d}-{self.index}"


@dataclass
class Run:
    """The fake Slack, the replicas and the figures."""

    fake: FakeSlack
    replicas: list[BotProcess]
    rng: random.Random
    turns: list[Turn] = field(default_factory=list)
    kills: int = 0
    stopping: bool = False
    starts: dict[Path, int] = field(default_factory=dict)  # by log: a restart appends to it

    def live(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self.fake.socket.connections if not ws.closed]

    async def deliver(self, turn: Turn, payload: dict[str, object]) -> None:
        """Send the event to a live replica until one acknowledges it (Slack's retries)."""
        for attempt in itertools.count():
            assert attempt < 20, f"{turn.marker} was never acknowledged"
            live = self.live()
            if not live:
                await self.fake.wait_until(self.live, within=30)
                continue
            turn.deliveries += 1
            try:
                envelope = await self.fake.socket.send(
                    "events_api",
                    payload,
                    retry_attempt=min(attempt, 3),
                    connection=self.rng.choice(live),
                )
                await self.fake.wait_until(acked(self.fake, envelope), ACK_WAIT)
            except (TimeoutError, ConnectionError, RuntimeError):
                continue
            turn.acked_at = time.monotonic()
            return

    async def member(self, thread: int) -> None:
        """One member's conversation: a mention, then replies in its thread."""
        await asyncio.sleep(self.rng.uniform(0, 30))
        root = sp.ts()
        for index in range(TURNS):
            turn = Turn(thread, index, MEMBERS[thread % len(MEMBERS)], root)
            self.turns.append(turn)
            slow = f"#slow={self.rng.choice((0.2, 0.5, 1, 2))}"
            text = f"{turn.marker} {slow}"
            if index == 0:
                payload = sp.mention(text, user=turn.member, at=root)
            else:
                payload = sp.message(text, user=turn.member, thread_ts=root)
            turn.sent_at = time.monotonic()
            await self.deliver(turn, payload)
            await asyncio.sleep(self.rng.uniform(0, 2))

    async def chaos(self) -> None:
        """Kill a replica every few seconds, restart it, and wait until it serves again."""
        for victim in itertools.cycle(self.replicas):
            await asyncio.sleep(self.rng.uniform(*KILL_EVERY))
            if self.stopping:
                return
            await victim.kill()
            self.kills += 1
            await victim.start()
            self.starts[victim.log_path] = self.starts.get(victim.log_path, 1) + 1
            await ready(self.fake, victim, count=self.starts[victim.log_path])

    def answers(self, turn: Turn) -> list[Message]:
        posts = self.fake.thread(sp.CHANNEL, turn.root)
        return [m for m in posts if answer_to(m) == turn.marker]

    def all_answered(self) -> bool:
        now = time.monotonic()
        for turn in self.turns:
            if turn.answered_at is None and self.answers(turn):
                turn.answered_at = now
        return len(self.turns) == THREADS * TURNS and all(t.answered_at for t in self.turns)


def answer_to(post: Message) -> str | None:
    """The marker of the turn a post answers (the sandbox also recalls the question before,
    so a later answer holds an earlier marker too: only the one it answers counts)."""
    found = _ANSWER.match(post.section_text())
    return found.group(1) if found else None


def acked(fake: FakeSlack, envelope: str) -> Callable[[], bool]:
    """Whether the envelope was acknowledged."""
    return lambda: envelope in fake.socket.acks


async def ready(fake: FakeSlack, bot: BotProcess, count: int) -> None:
    """Until the replica took turns (for the `count`th time) and holds a socket."""
    await bot.wait_for_log(TAKING_SLACK, within=60, count=count)
    await bot.wait_for_log("slack socket mode connected", within=60, count=count)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with running_fake_slack() as fake:
        for member in MEMBERS:
            fake.add_user(member, member.title())
        yield fake


@needs_postgres
async def test_chaos_two_replicas_killed_every_few_seconds_answer_every_turn_once(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(
            running_sandbox(SandboxConfig(start_credits=10_000))
        )
        url = await stack.enter_async_context(postgres_database())
        # Three members send 200 turns in half a minute: far over a member's default rate,
        # which is not what this run is about.
        setup = Setup(
            sandbox, url, tmp_path, slack=fake_slack, extra={"MEMBER_TURNS_PER_MINUTE": "0"}
        )
        replicas = [BotProcess(setup, tmp_path / f"{name}.log") for name in "ab"]
        run = Run(fake_slack, replicas, random.Random(SEED))
        for bot in replicas:
            stack.push_async_callback(stop, bot)
            await bot.start()
            await ready(fake_slack, bot, count=1)

        started = time.monotonic()
        watcher = asyncio.create_task(fake_slack.wait_until(run.all_answered, within=180))
        killer = asyncio.create_task(run.chaos())
        await asyncio.gather(*(run.member(thread) for thread in range(THREADS)))
        run.stopping = True
        await killer
        await watcher
        took = time.monotonic() - started
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            rows = await turn_rows(engine)
        finally:
            await engine.dispose()
        resumed = sum(bot.log().count("turn resumed") for bot in replicas)

        report(run, took, resumed)
        check(run, setup, rows)


def check(run: Run, setup: Setup, rows: list[dict[str, object]]) -> None:
    """Every turn delivered once, in order; each billed once; no placeholder left behind."""
    assert len(rows) == THREADS * TURNS
    assert {r["status"] for r in rows} == {"delivered"}
    completions = [
        c
        for c in setup.sandbox.state.calls_to("assistant/completion")
        if c.status == 200 and not c.replayed
    ]
    assert len(completions) == THREADS * TURNS  # one Samsar run per turn: 0 double charges
    for turn in run.turns:
        [answer] = run.answers(turn)  # exactly one post holds it
        assert "Sandbox reply" in answer.section_text(), answer
    for thread in range(THREADS):
        ours = [t for t in run.turns if t.thread == thread]
        posts = run.fake.thread(sp.CHANNEL, ours[0].root)
        for m in posts:  # no placeholder left, nor a note of waiting
            text = m.section_text()
            assert "Thinking" not in text and "Waiting" not in text and "in line" not in text, posts
        markers = [answer_to(m) for m in posts]
        assert None not in markers, posts  # every post is an answer: no note left behind
        order = [next(t.index for t in ours if t.marker == marker) for marker in markers]
        assert order == list(range(TURNS)), (thread, order)  # in the thread's order


def report(run: Run, took: float, resumed: int) -> None:
    latencies = sorted(
        t.answered_at - t.acked_at for t in run.turns if t.answered_at and t.acked_at
    )
    retried = sum(t.deliveries - 1 for t in run.turns)
    print(
        f"\nchaos: turns={len(run.turns)} answered={len(latencies)} kills={run.kills} "
        f"resumed={resumed} redelivered_envelopes={retried} seconds={took:.1f}\n"
        f"chaos: answer_latency_p50_s={latencies[len(latencies) // 2]:.2f} "
        f"longest_recovery_s={latencies[-1]:.2f}"
    )


async def stop(bot: BotProcess) -> None:
    if bot.running:
        await bot.kill()

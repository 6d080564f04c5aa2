"""`make bench`: what the bot costs on top of the Samsar call it wraps, measured side by side.

The sandbox runs in a process of its own (as Samsar would be elsewhere); this process runs
the bot's core, store and httpx client — whole durable turns: recorded, claimed, run and
delivered to a recording channel — and, interleaved with it, a bare httpx loop that sends the
same completion requests to the same sandbox (through the same transport for the overhead).
So both meet the same noise, and the figures are ratios and differences taken in one run:

- overhead per warm turn: p50/p99 of the bot's turn latency minus p50/p99 of the bare call's,
  over pairs run one after the other on a warm thread (SQLite; PostgreSQL too when
  BENCH_DATABASE_URL or TEST_DATABASE_URL names one: a throwaway database is made and dropped);
- throughput: 50 threads × 4 turns at once through the bot, against 50 bare loops of 4 calls
  on a plain `httpx.AsyncClient` (httpx's default transport: the issue's bare loop,
  `throughput_ratio_*`), and against the same loops on the bot's own transport (aiohttp's
  pool under httpx: `throughput_ratio_same_transport_*`, the bot's share alone);
- statements per warm turn (SQL statements executed, the durable lifecycle included);
- the longest event-loop stall (a heartbeat task every millisecond) during a 2048² and a
  4096² image turn, the platform's side included (Discord's fitting to the upload limit), and
  during the Slack rendering of a 40,000-character answer;
- peak memory (tracemalloc) per image in flight, over the image's bytes.

It ends with one `name: value` line per figure, so runs can be compared by a script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bots.bootstrap import settle
from bots.discord.render import render
from bots.slack.render import answer_pieces
from core import offload
from core.conversation.service import ConversationConfig, ConversationService
from core.models import (
    ChatUser,
    CompletionRequest,
    ExternalIdentity,
    ImageChoice,
    ImageOptions,
    IncomingMessage,
    Rate,
    ThreadRef,
)
from core.samsar import wire
from core.samsar.client import SamsarClient
from core.samsar.transport import SamsarTransport
from storage.store import SqlStore, open_store
from tests.turns import TurnDriver, driving

API_KEY = "bench-key"


@dataclass
class Sandbox:
    """The sandbox process and where it listens."""

    process: subprocess.Popen[bytes]
    base_url: str


@contextlib.contextmanager
def sandbox_process() -> Any:
    """`python -m sandbox` on a free port of 127.0.0.1, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", API_KEY]
    command += ["--start-credits", str(10**12)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.05)
        yield Sandbox(process, f"http://127.0.0.1:{port}/v1")
    finally:
        process.terminate()
        process.wait(10)


def pct(values: list[float], share: float) -> float:
    """The value below which `share` of the values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Bare:
    """The same completion requests as the bot's, sent with httpx alone (and parsed)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, body: bytes) -> None:
        self._http = http
        self._url = f"{base_url}/external_users/assistant/completion"
        self.body = body

    @classmethod
    async def ready(cls, http: httpx.AsyncClient, client: SamsarClient, base_url: str) -> Bare:
        """A sandbox user with a session, and the body of a plain question to it."""
        who = ExternalIdentity("bench", f"bare-{uuid.uuid4().hex[:8]}")
        await client.bootstrap_user(who, idempotency_key=uuid.uuid4().hex)
        session = await client.create_assistant_session(who, idempotency_key=uuid.uuid4().hex)
        request = CompletionRequest(session, "question", image_tool=ImageOptions())
        body = wire.CompletionBody.build(request, wire.ExternalUser.from_identity(who)).to_json()
        return cls(http, base_url, body)

    async def call(self) -> None:
        headers = {
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        response = await self._http.post(self._url, content=self.body, headers=headers)
        response.raise_for_status()
        response.json()


@contextlib.asynccontextmanager
async def bot(store: SqlStore, client: SamsarClient) -> AsyncIterator[TurnDriver]:
    """The core on this store, its worker delivering to a recording channel; each member's
    rate limited as in production (MEMBER_TURNS_PER_MINUTE), with an allowance never reached,
    so a turn pays for its token as a member's does."""
    unlimited = Rate(per_second=1e9, burst=1e9)
    service = ConversationService(client, store, ConversationConfig(member_rate=unlimited))
    async with driving(service, ("discord",)) as driver:
        yield driver


def member(run: str, n: int) -> tuple[ChatUser, ThreadRef]:
    return (
        ChatUser("discord", f"{run}-{n}", workspace_id="bench"),
        ThreadRef("discord", "bench", "C", f"{run}-{n}"),
    )


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


class Statements:
    """Counts the SQL statements the store sends while `on`."""

    def __init__(self, store: SqlStore) -> None:
        self._engine = store.db.engines[0]
        self.on = False
        self.sent = 0

    def _count(self, *_: object) -> None:
        if self.on:
            self.sent += 1

    def __enter__(self) -> Statements:
        event.listen(self._engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._count)


async def overhead(
    driver: TurnDriver, bare: Bare, statements: Statements, pairs: int
) -> tuple[float, float, float]:
    """p50 and p99 of (bot − bare) over `pairs` interleaved pairs; statements per bot turn."""
    run = uuid.uuid4().hex[:8]
    user, where = member(run, 0)
    bots: list[float] = []
    bares: list[float] = []
    statements.sent = 0
    for n in range(pairs + 5):
        message = IncomingMessage(f"{run}:{n}", user, where, f"question {n}")
        statements.on = n >= 5
        took = await timed(lambda: driver.ask(message))  # noqa: B023 (awaited at once)
        # The turn's finish and the worker's look for more work come after the answer:
        # counted too (the whole durable lifecycle), not timed.
        await asyncio.sleep(0.02)
        statements.on = False
        bare_took = await timed(bare.call)
        if n >= 5:  # the first turns warm the thread, the pool, the statement caches
            bots.append(took)
            bares.append(bare_took)
    ms = 1000.0
    return (
        (pct(bots, 0.5) - pct(bares, 0.5)) * ms,
        (pct(bots, 0.99) - pct(bares, 0.99)) * ms,
        statements.sent / pairs,
    )


@dataclass
class Rates:
    """Turns (calls) per second, each the best of two rounds."""

    bot: float
    bare: float  # on the bot's own transport: the bot's share alone
    bare_httpcore: float  # on httpx's default transport (httpcore's pool)
    statements: float  # per bot turn, in the rounds at once


async def throughput(
    driver: TurnDriver, bare: Bare, plain: Bare, statements: Statements, threads: int, turns: int
) -> Rates:
    """`threads` × `turns` at once through the bot, through bare loops on the bot's transport
    and through bare loops on httpx's default one, on warm threads (each member and session
    made before), alternating, best of two rounds each."""
    rates: dict[str, list[float]] = {"bot": [], "bare": [], "plain": []}
    statements.sent = 0
    for _ in range(2):
        run = uuid.uuid4().hex[:8]

        async def conversation(n: int, turns: int, first: int = 0, run: str = run) -> None:
            user, where = member(run, n)
            for turn in range(first, first + turns):
                await driver.ask(IncomingMessage(f"{run}:{n}:{turn}", user, where, f"q {turn}"))

        async def loop(bare: Bare) -> None:
            for _ in range(turns):
                await bare.call()

        await asyncio.gather(*(conversation(n, 1) for n in range(threads)))  # warm
        statements.on = True
        took = await timed(
            lambda: asyncio.gather(*(conversation(n, turns, 1) for n in range(threads)))
        )
        await asyncio.sleep(0.05)  # the last finishes (not timed)
        statements.on = False
        rates["bot"].append(threads * turns / took)
        for name, way in (("bare", bare), ("plain", plain)):
            took = await timed(lambda way=way: asyncio.gather(*(loop(way) for _ in range(threads))))
            rates[name].append(threads * turns / took)
    return Rates(
        max(rates["bot"]),
        max(rates["bare"]),
        max(rates["plain"]),
        statements.sent / (2 * threads * turns),
    )


class Heartbeat:
    """The longest the event loop kept a 1 ms timer waiting, while the block runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - 0.001)
            last = now

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def image_turn(driver: TurnDriver, side: int) -> int:
    """One image turn of `side`² (noisy, so it weighs what a real picture does), fitted for
    Discord as its adapter would; the image's bytes."""
    run = uuid.uuid4().hex[:8]
    user, where = member(run, side)
    message = IncomingMessage(f"{run}:img", user, where, "a noisy picture #noise")
    reply = await driver.imagine(message, ImageChoice(size=f"{side}x{side}"))
    assert reply is not None and reply.images, "the sandbox drew no picture"
    await render(reply, upload_limit=10 * 1024 * 1024)
    return sum(len(image.data) for image in reply.images)


async def stalls(driver: TurnDriver) -> dict[str, float]:
    """The longest stall during image turns and a long Slack answer, in ms."""
    found: dict[str, float] = {}
    for side in (2048, 4096):
        async with Heartbeat() as beat:
            await image_turn(driver, side)
        found[f"max_loop_stall_ms_{side}"] = beat.longest * 1000
    answer = "\n\n".join(
        f"Paragraph {n}: **bold** and `code` and a [link](https://x.y/{n})." for n in range(700)
    )[:40_000]
    async with Heartbeat() as beat:
        await asyncio.to_thread(answer_pieces, answer)  # as the Slack renderer does
    found["max_loop_stall_ms_slack_40k_answer"] = beat.longest * 1000
    return found


async def memory_per_image(driver: TurnDriver) -> float:
    """Peak traced memory during one 2048² image turn, over the image's bytes."""
    await image_turn(driver, 1024)  # warm: imports, caches
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        size = await image_turn(driver, 2048)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / size


@contextlib.asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str]:
    """A database of its own on the server of `url`, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def measure(url: str, base_url: str, label: str, quick: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with (
        open_store(url) as store,
        SamsarClient(API_KEY, base_url, completion_timeout=120) as client,
        httpx.AsyncClient(timeout=120, transport=SamsarTransport()) as http,
        httpx.AsyncClient(timeout=120) as plain_http,
        bot(store, client) as driver,
    ):
        settle()  # as `samsar-bot run` does once wired, and starts the picture workers
        await offload.warm()
        bare = await Bare.ready(http, client, base_url)
        plain = Bare(plain_http, base_url, bare.body)
        with Statements(store) as statements:
            p50, p99, sent = await overhead(driver, bare, statements, 60 if quick else 300)
            threads = 10 if quick else 50
            rates = await throughput(driver, bare, plain, statements, threads, 4)
        figures[f"overhead_p50_ms_{label}"] = p50
        figures[f"overhead_p99_ms_{label}"] = p99
        figures[f"statements_per_warm_turn{'' if label == 'sqlite' else '_' + label}"] = sent
        figures[f"statements_per_turn_at_once_{label}"] = rates.statements
        figures[f"throughput_ratio_{label}"] = rates.bot / rates.bare_httpcore
        figures[f"throughput_ratio_same_transport_{label}"] = rates.bot / rates.bare
        figures[f"throughput_turns_per_s_{label}"] = rates.bot
        if label == "sqlite":
            figures |= await stalls(driver)
            figures["peak_memory_per_image_ratio"] = await memory_per_image(driver)
    return figures


async def run(quick: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    postgres = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    with sandbox_process() as sandbox, tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        figures |= await measure(sqlite, sandbox.base_url, "sqlite", quick)
        if postgres:
            async with postgres_database(postgres) as url:
                figures |= await measure(url, sandbox.base_url, "postgres", quick)
    return figures


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    quick = parser.parse_args().quick
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    started = time.perf_counter()
    figures = asyncio.run(run(quick))
    print(f"took {time.perf_counter() - started:.0f} s{' (quick)' if quick else ''}")
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")


if __name__ == "__main__":
    main()

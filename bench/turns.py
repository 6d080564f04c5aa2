"""Turns per second and latency of the whole stack: core + storage + client + sandbox over HTTP.

    python -m bench.turns [--threads 50] [--turns 4] [--database-url URL]

Each turn is recorded, claimed by the turn worker, run and delivered to a recording channel
(the durable path every platform takes). Prints throughput, latency percentiles and the peak
RSS of the process. The sandbox runs in
the same process and event loop, so the figures are a floor for what one replica adds on top
of Samsar, not Samsar's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from core.conversation.service import ConversationConfig, ConversationService
from core.models import ChatUser, IncomingMessage, ThreadRef
from core.samsar.client import SamsarClient
from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from storage.store import open_store
from tests.turns import driving


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(threads: int, turns: int, url: str) -> None:
    """Run `threads` conversations of `turns` messages each, all threads at once."""
    config = SandboxConfig(start_credits=10**9)
    async with (
        contextlib.AsyncExitStack() as exits,
        running_sandbox(config) as sandbox,
        open_store(url) as store,
        SamsarClient(sandbox.api_key, sandbox.base_url) as client,
    ):
        plain = ConversationService(client, store, ConversationConfig())
        stack = await exits.enter_async_context(driving(plain, ("discord",)))
        latencies: list[float] = []
        run_id = uuid.uuid4().hex[:8]  # a database kept between runs must not see duplicates

        async def conversation(n: int) -> None:
            user = ChatUser("discord", f"{run_id}-{n}", workspace_id="bench")
            where = ThreadRef("discord", "bench", "C", f"{run_id}-{n}")
            for turn in range(turns):
                started = time.perf_counter()
                reply = await stack.ask(
                    IncomingMessage(f"bench:{run_id}:{n}:{turn}", user, where, f"question {turn}")
                )
                latencies.append(time.perf_counter() - started)
                assert reply is not None and reply.text

        await conversation(-1)  # warm up: migrations done, connections open
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(conversation(n) for n in range(threads)))
        wall = time.perf_counter() - started
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    total = threads * turns
    backend = url.split(":", 1)[0]
    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, backend {backend}"
    )
    print(
        f"turns: {total} ({threads} threads x {turns}), wall {wall:.2f} s, "
        f"{total / wall:.1f} turns/s"
    )
    print(
        f"latency per turn (ms): p50 {percentile(latencies, 0.5) * 1000:.1f}, "
        f"p95 {percentile(latencies, 0.95) * 1000:.1f}, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f}, "
        f"mean {statistics.fmean(latencies) * 1000:.1f}"
    )
    print(f"peak RSS of the process (bot + sandbox): {peak_rss / 1024:.1f} MiB")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(args.threads, args.turns, url))


if __name__ == "__main__":
    main()

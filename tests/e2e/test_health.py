"""`samsar-bot run`'s health, readiness and metrics endpoints, scraped while it serves."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from tests.e2e.processes import Setup, bot_process, free_port
from tests.e2e.slack import payloads as sp
from tests.e2e.slack.fake_slack import running_fake_slack
from tests.e2e.slack.payloads import ALICE, CHANNEL


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(running_sandbox(SandboxConfig()))
        slack = await stack.enter_async_context(running_fake_slack())
        slack.add_user(ALICE, "Alice")
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        yield Setup(sandbox, url, tmp_path, slack=slack)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text (0 when absent)."""
    shown = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(f"{name}{{{shown}}}" if labels else name) + r" ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_health_readiness_and_metrics_while_serving(setup: Setup, tmp_path: Path) -> None:
    fake = setup.slack
    assert fake is not None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with (
        bot_process(setup, tmp_path / "bot.log", {"HEALTH_PORT": str(port)}) as bot,
        httpx.AsyncClient(base_url=base, timeout=5) as http,
    ):
        async with asyncio.timeout(30):
            while True:  # polling the endpoint under the deadline
                try:
                    ready = await http.get("/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.ConnectError:
                    pass
                assert bot.running, bot.log()[-2000:]
                await asyncio.sleep(0.05)
        assert ready.json() == {
            "ready": True,
            "database": "ok",
            "platforms": {"slack": "connected"},
        }
        assert (await http.get("/healthz")).status_code == 200
        before = (await http.get("/metrics")).text
        at = sp.ts()
        envelope = await fake.socket.send("events_api", sp.mention("count me", at=at))
        await fake.wait_until(lambda: envelope in fake.socket.acks)
        await fake.wait_until(
            lambda: any("Sandbox reply" in m.section_text() for m in fake.thread(CHANNEL, at)),
            within=30,
        )
        async with asyncio.timeout(10):
            while True:  # the outcome is counted once stored: poll under the deadline
                after = (await http.get("/metrics")).text
                if metric(after, "samsar_bot_turns_total", kind="ask", outcome="answered"):
                    break
                await asyncio.sleep(0.05)
        started = bot.log()
    # The start says what runs, never a secret.
    assert "samsar-bot starting" in started and "platforms=['slack']" in started
    assert "database='sqlite'" in started and "xoxb-" not in started
    assert metric(before, "samsar_bot_turns_total", kind="ask", outcome="answered") == 0
    assert metric(after, "samsar_bot_turns_total", kind="ask", outcome="answered") == 1
    assert metric(after, "samsar_bot_events_total", platform="slack", type="ask") == 1
    assert metric(after, "samsar_bot_credits_charged_total") == 1
    completions = metric(
        after, "samsar_bot_samsar_seconds_count", route="external_users/assistant/completion"
    )
    assert completions == 1

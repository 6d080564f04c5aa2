"""The Slack bot end to end: real slack-bolt and slack-sdk, the fake Slack, the sandbox Samsar
and a SQLite store, over HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bots.bootstrap import conversation_config
from bots.slack.app import SlackBot, SlackOptions, slack_client
from bots.slack.transport import serving_http, socket_mode
from core.conversation.service import ConversationService
from core.samsar.client import SamsarClient
from core.samsar.retry import RetryPolicy
from core.settings import Settings
from sandbox.app import RunningSandbox, running_sandbox
from sandbox.state import CallRecord, SandboxConfig
from storage.store import SqlStore, open_store
from tests.e2e.slack import payloads
from tests.e2e.slack.fake_records import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.e2e.slack.fake_slack import FakeSlack, json_body, post_signed, running_fake_slack
from tests.e2e.slack.payloads import ADA, ALICE, BOB, CHANNEL
from tests.ledger import OPEN, wait_for_turns

TRANSPORTS = ["http", "socket"]


def settings(**overrides: Any) -> Settings:
    """Slack settings for the tests (explicit values win over the environment)."""
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_app_token": None,
        "admin_user_keys": (),
        **overrides,
    }
    return Settings(**values)


@dataclass
class Slack:
    """One running bot and everything around it."""

    fake: FakeSlack
    sandbox: RunningSandbox
    store: SqlStore
    bot: SlackBot
    transport: str
    service: ConversationService
    http_url: str = ""

    async def event(self, payload: dict[str, Any], *, retry: int = 0) -> None:
        """Deliver an Events API payload and wait for the ack."""
        if self.transport == "http":
            status, _ = await post_signed(
                f"{self.http_url}/slack/events",
                json_body(payload),
                content_type="application/json",
                retry_num=retry or None,
            )
            assert status == 200
            return
        envelope = await self.fake.socket.send("events_api", payload, retry_attempt=retry)
        await self.fake.wait_until(lambda: envelope in self.fake.socket.acks)

    async def command(
        self,
        text: str,
        *,
        user: str = ALICE,
        channel: str = CHANNEL,
        form: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Run `/samsar text` (or deliver `form` again) and wait for the ack; the form sent."""
        form = form or payloads.command(text, self.fake.response_url(), user=user, channel=channel)
        if self.transport == "http":
            status, _ = await post_signed(
                f"{self.http_url}/slack/events",
                urlencode(form),
                content_type="application/x-www-form-urlencoded",
            )
            assert status == 200
            return form
        envelope = await self.fake.socket.send("slash_commands", form)
        await self.fake.wait_until(lambda: envelope in self.fake.socket.acks)
        return form

    async def interact(self, payload: dict[str, Any]) -> None:
        """Deliver a click or a form (as a signed form with `payload`, or an `interactive`
        envelope) and wait for the ack."""
        if self.transport == "http":
            status, _ = await post_signed(
                f"{self.http_url}/slack/events",
                urlencode({"payload": json.dumps(payload)}),
                content_type="application/x-www-form-urlencoded",
            )
            assert status == 200
            return
        envelope = await self.fake.socket.send("interactive", payload)
        await self.fake.wait_until(lambda: envelope in self.fake.socket.acks)

    async def settle(self) -> None:
        """Wait until the work after acks is over, and every recorded turn delivered or failed."""
        async with asyncio.timeout(15):
            await self.bot.tasks.drain()
        await wait_for_turns(
            self.store.engine,
            lambda rows: not any(row["status"] in OPEN for row in rows),
            within=15,
            what="every turn to end",
        )

    def completions(self) -> list[CallRecord]:
        """Successful completions Samsar answered."""
        return [c for c in self.sandbox.state.calls_to("assistant/completion") if c.status == 200]

    def charged(self, user: str) -> int:
        """Credits Samsar charged a member of the fake team."""
        return self.sandbox.state.charged_total("slack", f"slack:{payloads.TEAM}:{user}")


@asynccontextmanager
async def running_slack(
    tmp_path: Path,
    transport: str,
    *,
    fake: FakeSlack | None = None,
    sandbox: RunningSandbox | None = None,
    store: SqlStore | None = None,
    start_credits: int = 1000,
    file_timeout: float = 30.0,
    **overrides: Any,
) -> AsyncIterator[Slack]:
    """Start (or share) the fake, the sandbox and the store, and run one bot on them."""
    async with AsyncExitStack() as stack:
        if fake is None:
            fake = await stack.enter_async_context(running_fake_slack())
            fake.add_user(ALICE, "Alice")
            fake.add_user(BOB, "Bob")
            fake.add_user(ADA, "Ada", admin=True)
        if sandbox is None:
            config = SandboxConfig(start_credits=start_credits)
            sandbox = await stack.enter_async_context(running_sandbox(config))
        if store is None:
            store = await stack.enter_async_context(
                open_store(f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}")
            )
        samsar = await stack.enter_async_context(
            SamsarClient(
                sandbox.api_key,
                sandbox.base_url,
                timeout=5,
                completion_timeout=10,
                retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
            )
        )
        config = settings(**overrides)
        service = ConversationService(samsar, store, conversation_config(config))
        client = slack_client(BOT_TOKEN, base_url=fake.api_url)
        options = SlackOptions(
            progress_every=0.2, file_origins=(fake.url,), file_timeout=file_timeout
        )
        await stack.enter_async_context(service.worker.serving())
        bot = SlackBot(service, config, client=client, options=options)
        slack = Slack(fake, sandbox, store, bot, transport, service)
        if transport == "http":
            slack.http_url = await stack.enter_async_context(
                serving_http(bot, host="127.0.0.1", port=0)
            )
        else:
            await stack.enter_async_context(socket_mode(bot, APP_TOKEN))
            await fake.socket.connected()
        stack.push_async_callback(bot.close, 5.0)
        yield slack


@pytest.fixture(params=TRANSPORTS)
async def slack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Slack]:
    """The bot over each transport."""
    async with running_slack(tmp_path, request.param) as running:
        yield running


@pytest.fixture
async def slack_http(tmp_path: Path) -> AsyncIterator[Slack]:
    """The bot over HTTP only (signatures, retry headers)."""
    async with running_slack(tmp_path, "http") as running:
        yield running

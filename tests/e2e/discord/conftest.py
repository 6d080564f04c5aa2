"""The real discord.py bot against the fake Discord, with the sandbox as Samsar and SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from bots.bootstrap import conversation_config
from bots.discord.bot import SamsarDiscordBot
from core.conversation.service import ConversationService
from core.samsar.client import SamsarClient
from core.samsar.retry import RetryPolicy
from core.settings import Settings
from sandbox.app import RunningSandbox, running_sandbox
from sandbox.state import SandboxConfig
from storage.store import SqlStore, open_store
from tests.e2e.discord import payloads as p
from tests.e2e.discord.fake_discord import TOKEN, FakeDiscord, Stored
from tests.ledger import open_turns

STRING, INTEGER, ATTACHMENT = 3, 4, 11

ALICE = p.user(p.snowflake(), "alice")
BOB = p.user(p.snowflake(), "bob")
ADA = p.user(p.snowflake(), "ada")


def option(name: str, value: Any, kind: int = STRING) -> dict[str, Any]:
    """One command option as Discord sends it."""
    return {"name": name, "type": kind, "value": value}


def sub(name: str, *options: dict[str, Any]) -> dict[str, Any]:
    """A subcommand option (`/persona set …`)."""
    return {"name": name, "type": p.SUB_COMMAND, "options": list(options)}


@dataclass
class Harness:
    """One running bot and what it talks to, with the moves a member makes."""

    fake: FakeDiscord
    sandbox: RunningSandbox
    store: SqlStore
    bot: SamsarDiscordBot

    async def slash(
        self, name: str, *options: dict[str, Any], who: dict[str, Any] = ALICE, **kw: Any
    ) -> dict[str, Any]:
        """A member runs a slash command; returns the INTERACTION_CREATE payload."""
        payload = self.fake.new_interaction(name, list(options), who=who, **kw)
        await self.fake.dispatch_interaction(payload)
        return payload

    async def say(
        self,
        content: str,
        *,
        who: dict[str, Any] = ALICE,
        channel_id: int | None = None,
        mention: bool = False,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A member writes a message; returns the MESSAGE_CREATE payload."""
        channel_id = channel_id or self.fake.channel_id
        channel = self.fake.channels[channel_id]
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        if mention:
            content = f"<@{self.fake.bot['id']}> {content}"
        payload = p.message(
            p.snowflake(),
            channel_id,
            who,
            content,
            guild_id=guild_id,
            attachments=attachments,
            mentions=[self.fake.bot] if mention else [],
        )
        self.fake.messages.setdefault(channel_id, []).append(Stored(payload))
        await self.fake.gateway.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def answer(
        self,
        payload: dict[str, Any],
        within: float = 10.0,
        when: Callable[[Stored], bool] = lambda _: True,
    ) -> Stored:
        """The interaction's original response once it holds more than "thinking" (and `when`)."""
        state = self.fake.interaction(payload)

        def done() -> Stored | None:
            original = state.original
            if original is None or int(original.payload["flags"]) & p.LOADING:
                return None
            return original if when(original) else None

        return await self.fake.wait_for(done, within, f"an answer to /{payload['data']['name']}")

    async def settle(self, within: float = 20.0) -> None:
        """Until every event handler and command the bot started has finished, and every turn
        they recorded is delivered or failed."""
        async with asyncio.timeout(within):
            while True:
                if busy := _handler_tasks():
                    await asyncio.wait(busy)
                elif await open_turns(self.store.engine):
                    await asyncio.sleep(0.02)  # polling the ledger under the deadline above
                else:
                    return

    def completions(self) -> int:
        """Completions Samsar answered with 200."""
        calls = self.sandbox.state.calls_to("assistant/completion")
        return len([c for c in calls if c.status == 200 and not c.replayed])

    def charged(self, who: dict[str, Any]) -> int:
        """Credits Samsar charged a member."""
        return self.sandbox.state.charged_total("discord", f"discord:{who['id']}")

    def open_dm(self, who: dict[str, Any]) -> int:
        """A DM channel between the member and the bot."""
        channel_id = p.snowflake()
        self.fake.channels[channel_id] = p.dm_channel(channel_id, who)
        self.fake.messages[channel_id] = []
        return channel_id


def _handler_tasks() -> set[asyncio.Task[Any]]:
    """discord.py runs each event handler and each command in a task of its own, and the turn
    worker each turn, by these names."""
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not task.done()
        and task.get_name().startswith(("discord.py: on_", "CommandTree-invoker", "turn:"))
    }


@contextlib.asynccontextmanager
async def running_harness(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    completion_timeout: float = 20.0,
    status_every: float = 5.0,
    start_credits: int = 100,
    fake: FakeDiscord | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    """Sandbox, store, fake Discord (`fake`, set up beforehand, or a new one) and the bot
    started with `start()`; all stopped after."""
    fake = fake or FakeDiscord()
    async with (
        fake.running(),
        running_sandbox(SandboxConfig(start_credits=start_credits)) as sandbox,
        open_store(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as store,
        SamsarClient(
            sandbox.api_key,
            sandbox.base_url,
            timeout=5,
            completion_timeout=completion_timeout,
            retry=RetryPolicy(attempts=1),
        ) as samsar,
    ):
        # The real client, pointed at the fake (monkeypatch restores both after the test).
        monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.base_url}/api/v10")
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway.url))
        guild_ids = overrides.pop(
            "discord_guild_ids", ",".join(str(guild_id) for guild_id in fake.guild_ids)
        )
        settings = Settings(discord_token=TOKEN, discord_guild_ids=guild_ids, **overrides)
        service = ConversationService(samsar, store, conversation_config(settings))
        bot = SamsarDiscordBot(
            service,
            settings,
            status_every=status_every,
            cdn_origins=(fake.base_url,),  # the fake's CDN stands in for Discord's
            guild_ready_timeout=0.05,
        )
        async with service.worker.serving():
            task = asyncio.create_task(bot.start(TOKEN))
            try:
                await fake.gateway.wait_connected()
                async with asyncio.timeout(10):
                    await bot.wait_until_ready()
                running = Harness(fake, sandbox, store, bot)
                yield running
                await running.settle()
            finally:
                await bot.close()
                async with asyncio.timeout(10):
                    await task


@pytest.fixture
async def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The default running bot."""
    async with running_harness(tmp_path, monkeypatch) as running:
        yield running

"""Start-up, command sync, admin prompts and the account commands."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from bots.bootstrap import wire
from bots.discord.bot import SamsarDiscordBot, run_discord
from core.conversation.service import ConversationConfig, ConversationService
from core.settings import Settings
from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import ADA, ALICE, BOB, Harness, option, running_harness, sub
from tests.e2e.discord.fake_discord import TOKEN, FakeDiscord
from tests.fakes import FakeSamsar, MemoryStore

MESSAGE_CONTENT, GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES = 1 << 15, 1 << 0, 1 << 9, 1 << 12


async def test_start_up_asks_for_message_content_and_syncs_commands_to_the_guild(
    harness: Harness,
) -> None:
    fake = harness.fake
    intents = fake.gateway.identifies[0]["intents"]
    for bit in (MESSAGE_CONTENT, GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES):
        assert intents & bit
    synced = {c["name"]: c for c in fake.commands[str(fake.guild_id)]}
    assert set(synced) == {
        "chat",
        "reset",
        "imagine",
        "credits",
        "buy",
        "studio",
        "persona",
        "prompt",
    }
    assert int(synced["prompt"]["default_member_permissions"]) == p.MANAGE_GUILD
    assert "global" not in fake.commands
    assert fake.gateway.heartbeats >= 1


async def test_a_server_the_bot_is_not_in_is_named_to_the_operator_and_the_rest_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeDiscord()
    stranger = p.snowflake()
    ids = f"{stranger},{fake.guild_id}"
    with caplog.at_level(logging.ERROR, logger="bots.discord.bot"):
        async with running_harness(tmp_path, monkeypatch, fake=fake, discord_guild_ids=ids) as h:
            assert {c["name"] for c in fake.commands[str(fake.guild_id)]} >= {"chat", "imagine"}
            assert str(stranger) not in fake.commands
            answer = await h.answer(await h.slash("chat", option("prompt", "hello")))
            assert answer.content.startswith("Sandbox reply #1: hello")  # it serves the rest
    refused = [r for r in caplog.records if str(stranger) in r.getMessage()]
    assert len(refused) == 1
    assert "applications.commands" in refused[0].getMessage()
    assert "oauth2/authorize" in refused[0].getMessage()  # the invite URL, to mend it


async def test_run_discord_serves_the_wired_app_until_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord()
    async with fake.running():
        # run_discord points discord.py at the URLs of the settings; monkeypatch puts the
        # library's own values back after the test.
        monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
        settings = Settings(
            discord_token=TOKEN,
            discord_guild_ids=str(fake.guild_id),
            data_dir=tmp_path,
            discord_api_url=f"{fake.base_url}/api/v10",
            discord_gateway_url=fake.gateway.url,
        )
        async with wire(settings, sandbox=True) as app:
            running = asyncio.create_task(run_discord(app))
            await fake.gateway.wait_connected()
            await fake.wait_for(lambda: fake.commands, what="the command sync")
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        assert len(fake.gateway.identifies) == 1


async def test_a_wrong_token_is_refused_at_login(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDiscord()
    async with fake.running():
        monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.base_url}/api/v10")
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway.url))
        service = ConversationService(FakeSamsar(), MemoryStore(), ConversationConfig())
        async with SamsarDiscordBot(service, Settings()) as bot:
            with pytest.raises(discord.LoginFailure):
                await bot.start("not-the-token")
        assert [r.status for r in fake.requests] == [401]


async def test_only_a_manage_server_member_sets_a_prompt_and_it_reaches_the_next_session(
    harness: Harness,
) -> None:
    refused = await harness.slash(
        "prompt", sub("set", option("text", "Answer in haiku.")), who=BOB
    )  # Discord would hide the command from Bob; the bot checks anyway
    assert "Only workspace admins" in (await harness.answer(refused)).content
    assert await harness.store.audit.recent() == []

    admin = p.MEMBER_PERMISSIONS | p.MANAGE_GUILD
    allowed = await harness.slash(
        "prompt",
        sub("set", option("text", "Answer in haiku."), option("scope", "channel")),
        who=ADA,
        permissions=admin,
    )
    assert "channel prompt is set" in (await harness.answer(allowed)).content
    assert [e.action for e in await harness.store.audit.recent()] == ["prompt.set"]
    shown = await harness.slash(
        "prompt", sub("show", option("scope", "channel")), who=ADA, permissions=admin
    )
    assert "Answer in haiku." in (await harness.answer(shown)).content

    answer = await harness.answer(await harness.slash("chat", option("prompt", "a poem")))
    assert "(developer: Instructions from the admins for this channel" in answer.content


async def test_account_commands_answer_privately(harness: Harness) -> None:
    buy = await harness.answer(await harness.slash("buy", option("credits", 50, kind=4)))
    assert "Buy 50 credits here: http://127.0.0.1" in buy.content
    studio = await harness.answer(await harness.slash("studio"))
    assert "login link" in studio.content
    await harness.answer(await harness.slash("persona", sub("set", option("text", "Be terse."))))
    shown = await harness.answer(await harness.slash("persona", sub("show")))
    assert "Be terse." in shown.content
    for message in (buy, studio, shown):
        assert int(message.payload["flags"]) & p.EPHEMERAL
    answer = await harness.answer(await harness.slash("chat", option("prompt", "hi")))
    assert "(developer: This member's own preferences" in answer.content  # below any admins'
    cleared = await harness.answer(await harness.slash("persona", sub("clear")))
    assert "cleared" in cleared.content
    assert harness.charged(ALICE) == 1

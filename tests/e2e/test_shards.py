"""A Discord bot spread over processes: two `samsar-bot run`, one shard each of two, against the
fake gateway. Each guild's events reach the process that runs its shard and no other, and are
answered once, by that process (each keeps its own ledger here, so the answer shows who ran it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from storage.engine import create_engine
from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import ALICE, option
from tests.e2e.discord.fake_discord import FakeDiscord, Stored
from tests.e2e.processes import BotProcess, Setup, bot_process
from tests.e2e.test_durable_process import answer_of, completions
from tests.ledger import OPEN, wait_for_turns

SHARDS = 2
CALLBACK = "/interactions/{interaction_id}/{token}/callback"
PERMISSIONS = 309237763072  # view, send, embed, attach, history, public threads, thread posts


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(running_sandbox(SandboxConfig()))
        discord = FakeDiscord()
        await stack.enter_async_context(discord.running())
        yield Setup(sandbox, "", tmp_path, discord=discord)


def ledger_url(tmp_path: Path, shard: int) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / f'shard-{shard}.db'}"


async def event_keys(url: str) -> list[str]:
    """The event keys of a process's turns, once they are all delivered."""
    engine = create_engine(url)
    try:
        rows = await wait_for_turns(
            engine, lambda rows: not any(r["status"] in OPEN for r in rows), within=30
        )
    finally:
        await engine.dispose()
    assert {r["status"] for r in rows} == {"delivered"}, rows
    return sorted(r["event_key"] for r in rows)


async def test_two_processes_one_shard_each_answer_only_their_own_guilds_once(
    setup: Setup, tmp_path: Path
) -> None:
    fake = setup.discord
    assert fake is not None
    guilds = {shard: fake.add_guild_in_shard(shard, SHARDS) for shard in range(SHARDS)}
    common = {
        "DISCORD_SHARD_COUNT": str(SHARDS),
        "DISCORD_GUILD_IDS": ",".join(str(guild_id) for guild_id, _ in guilds.values()),
    }
    async with AsyncExitStack() as stack:
        bots: dict[int, BotProcess] = {}
        for shard in range(SHARDS):
            extra = common | {
                "DISCORD_SHARD_IDS": str(shard),
                "DATABASE_URL": ledger_url(tmp_path, shard),
            }
            log = tmp_path / f"shard-{shard}.log"
            bots[shard] = await stack.enter_async_context(bot_process(setup, log, extra))
        for bot in bots.values():
            await bot.wait_for_log("discord shard ready")
        await fake.gateway.wait_connected(within=30, shards=SHARDS)
        assert sorted(i["shard"] for i in fake.gateway.identifies) == [[0, 2], [1, 2]]

        asked: dict[int, dict[str, Any]] = {}
        said: dict[int, dict[str, Any]] = {}
        for shard, (guild_id, channel_id) in guilds.items():
            prompt = option("prompt", f"command in guild {shard}")
            asked[shard] = fake.new_interaction("chat", [prompt], who=ALICE, channel_id=channel_id)
            await fake.dispatch_interaction(asked[shard])
            said[shard] = p.message(
                p.snowflake(),
                channel_id,
                ALICE,
                f"<@{fake.bot['id']}> mention in guild {shard}",
                guild_id=guild_id,
                mentions=[fake.bot],
            )
            fake.messages[channel_id].append(Stored(said[shard]))
            await fake.gateway.dispatch("MESSAGE_CREATE", said[shard])
        dm = p.snowflake()
        fake.channels[dm] = p.dm_channel(dm, ALICE)
        fake.messages[dm] = []
        direct = p.message(p.snowflake(), dm, ALICE, "a DM")
        fake.messages[dm].append(Stored(direct))
        await fake.gateway.dispatch("MESSAGE_CREATE", direct)  # DMs come on shard 0

        for shard, (_, channel_id) in guilds.items():
            answer = await answer_of(fake, asked[shard], f"command in guild {shard}")
            assert answer.content.startswith("Sandbox reply")
            await fake.wait_for(
                lambda c=channel_id, s=shard: [
                    m for m in fake.replies(c) if f"mention in guild {s}" in m.content
                ],
                30,
                f"the answer to the mention in guild {shard}",
            )
        await fake.wait_for(lambda: fake.replies(dm), 30, "the answer to the DM")
        keys = {shard: await event_keys(ledger_url(tmp_path, shard)) for shard in range(SHARDS)}
        logs = {shard: bot.log() for shard, bot in bots.items()}

    # Each guild's events went to its own shard's connection, and nowhere else...
    for shard in range(SHARDS):
        sent = fake.gateway.received(shard, "INTERACTION_CREATE")
        assert [i["id"] for i in sent] == [asked[shard]["id"]]
        messages = [m["id"] for m in fake.gateway.received(shard, "MESSAGE_CREATE")]
        assert messages == [said[shard]["id"], direct["id"]][: 2 if shard == 0 else 1]
    # ...were recorded and answered by the process that runs it, and by no other.
    assert keys[0] == sorted(
        [
            f"discord:interaction:{asked[0]['id']}",
            f"discord:message:{said[0]['id']}",
            f"discord:message:{direct['id']}",
        ]
    )
    assert keys[1] == sorted(
        [f"discord:interaction:{asked[1]['id']}", f"discord:message:{said[1]['id']}"]
    )
    # Each answered once: one acknowledgement per command, one reply per message.
    assert [r.status for r in fake.calls("POST", CALLBACK)] == [200, 200]
    for shard, (_, channel_id) in guilds.items():
        replies = [m.content for m in fake.replies(channel_id) if "Sandbox reply" in m.content]
        assert len(replies) == 2, replies  # the command's and the mention's
        assert [f"command in guild {shard}" in text for text in replies].count(True) == 1
    assert len(fake.replies(dm)) == 1
    assert len(completions(setup)) == 5

    # The start names the shards of the process; the invite URL is logged once.
    for shard in range(SHARDS):
        assert f"discord_shards='{shard} of {SHARDS}'" in logs[shard]
        invite = [line for line in logs[shard].splitlines() if "discord invite url" in line]
        assert len(invite) == 1
        assert f"client_id={fake.app_id}" in invite[0]
        assert "scope=bot+applications.commands" in invite[0]
        assert f"permissions={PERMISSIONS}" in invite[0]

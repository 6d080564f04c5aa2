"""Shards: Discord's recommended count when none is set, readiness over every shard of the
process, and the counts Discord refuses. (Shards spread over processes: tests/e2e/test_shards.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import discord
import httpx
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from bots.bootstrap import wire
from bots.discord.bot import is_fatal, run_discord
from bots.discord.shards import ShardingRefused
from bots.health import health_server
from core.settings import Settings
from tests.e2e.discord.conftest import running_harness
from tests.e2e.discord.fake_discord import TOKEN, FakeDiscord


async def readiness(http: httpx.AsyncClient, status: int, within: float = 10.0) -> Any:
    """Poll /readyz until it answers `status`; returns its body."""
    async with asyncio.timeout(within):
        # Polling the endpoint under the deadline above.
        while (answer := await http.get("/readyz")).status_code != status:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return answer.json()


async def test_unset_shards_run_discords_count_here_and_ready_means_every_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord(shards=2, required_shards=2)  # one shard alone would be refused
    guilds = {shard: fake.add_guild_in_shard(shard, 2) for shard in (0, 1)}
    async with running_harness(tmp_path, monkeypatch, fake=fake) as harness:
        gateway = fake.gateway
        assert sorted(identify["shard"] for identify in gateway.identifies) == [[0, 2], [1, 2]]
        async with (
            health_server(
                "127.0.0.1", 0, platforms=["discord"], database=harness.store.db.ping
            ) as url,
            httpx.AsyncClient(base_url=url, timeout=5) as http,
        ):
            await readiness(http, 200)
            gateway.hold()  # Discord unreachable: shard 1 cannot come back yet
            await gateway.drop(shard_id=1)
            down = await readiness(http, 503)
            assert down["platforms"] == {"discord": "down"}
            assert gateway.live(0)  # shard 0 is still connected: not enough to be ready
            gateway.release()
            await gateway.wait_connected(shards=2)
            await readiness(http, 200)
            assert len(gateway.resumes) == 1

        said = {}
        for shard, (_, channel_id) in guilds.items():
            said[shard] = await harness.say(
                f"hi shard {shard}", channel_id=channel_id, mention=True
            )
        for shard, (_, channel_id) in guilds.items():
            await fake.wait_for(
                lambda c=channel_id: fake.replies(c), what=f"shard {shard}'s answer"
            )
        await harness.settle()
        for shard, (_, channel_id) in guilds.items():
            [reply] = fake.replies(channel_id)
            assert reply.content.startswith(f"Sandbox reply #1: hi shard {shard}")
            # The guild's message came on its own shard's connection only.
            assert [m["id"] for m in gateway.received(shard, "MESSAGE_CREATE")] == [
                said[shard]["id"]
            ]
        assert harness.completions() == 2


async def test_a_shard_count_below_what_discord_needs_stops_discord_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord(shards=2, required_shards=2)
    async with fake.running():
        # run_discord points discord.py at the URLs of the settings; monkeypatch puts the
        # library's own values back after the test.
        monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
        settings = Settings(
            discord_token=TOKEN,
            discord_guild_ids=str(fake.guild_id),
            discord_shard_count=1,
            data_dir=tmp_path,
            discord_api_url=f"{fake.base_url}/api/v10",
            discord_gateway_url=fake.gateway.url,
        )
        async with wire(settings, sandbox=True) as app:
            with pytest.raises(ShardingRefused) as refused:
                async with asyncio.timeout(20):
                    await run_discord(app)
    assert fake.gateway.refused == [4011] and not fake.gateway.identifies
    assert is_fatal(refused.value)  # no restart: the same count would be refused again
    assert "DISCORD_SHARD_COUNT=1" in str(refused.value)
    assert TOKEN not in str(refused.value)


async def test_the_fake_gateway_refuses_a_shard_that_cannot_be_as_discord_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeDiscord()
    async with fake.running():
        monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.base_url}/api/v10")
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway.url))
        # discord.py itself does not check the ids against the count: Discord does.
        client = discord.AutoShardedClient(
            intents=discord.Intents.none(), shard_ids=[2], shard_count=2
        )
        async with client:
            with pytest.raises(discord.ConnectionClosed) as closed:
                async with asyncio.timeout(20):
                    await client.start(TOKEN)
    assert closed.value.code == 4010
    assert fake.gateway.refused == [4010] and not fake.gateway.identifies

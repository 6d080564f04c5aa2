"""DISCORD_ALLOWED_GUILDS over the real discord.py: the bot leaves servers not on the list
and, until it is gone, ignores their messages and answers their interactions with a short
private "not enabled here" — nothing recorded, nothing asked of Samsar. DMs stay served."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.discord import texts
from tests.e2e.discord.conftest import ALICE, option, running_harness
from tests.e2e.discord.fake_discord import FakeDiscord
from tests.ledger import turn_rows

LEAVE = "/users/@me/guilds/{guild_id}"


async def test_servers_off_the_list_are_left_at_ready_and_on_joining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord()
    already_in, _ = fake.add_guild(joined=True)
    allowed = str(fake.guild_id)
    async with running_harness(tmp_path, monkeypatch, fake=fake, discord_allowed_guilds=allowed):
        left = await fake.wait_for(lambda: fake.calls("DELETE", LEAVE), what="a server left")
        assert [(c.path, c.status) for c in left] == [
            (f"/api/v10/users/@me/guilds/{already_in}", 204)
        ]
        newly_added, _ = fake.add_guild(joined=False)
        await fake.join(newly_added)
        left = await fake.wait_for(lambda: fake.calls("DELETE", LEAVE)[1:], what="another")
        assert [c.path for c in left] == [f"/api/v10/users/@me/guilds/{newly_added}"]
        assert fake.joined == [fake.guild_id]  # the allowed server is kept


async def test_a_server_off_the_list_is_ignored_until_left_and_dms_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord()
    elsewhere, channel = fake.add_guild(joined=False)
    allowed = str(fake.guild_id)
    async with running_harness(
        tmp_path, monkeypatch, fake=fake, discord_allowed_guilds=allowed
    ) as harness:
        fake.hold_leaves()  # what arrives from there before Discord takes the bot out
        await fake.join(elsewhere)
        await fake.wait_for(lambda: elsewhere in fake.leave_requests, what="a leave asked")
        await harness.say("spend their credits", channel_id=channel, mention=True)
        asked = await harness.slash("chat", option("prompt", "and mine"), channel_id=channel)
        refused = await harness.answer(asked)  # the gateway reads in order: the message first
        assert refused.content == texts.NOT_ENABLED_HERE
        assert fake.interaction(asked).ephemeral
        fake.release_leaves()
        await fake.wait_for(lambda: elsewhere not in fake.joined, what="the server left")

        dm = harness.open_dm(ALICE)
        await harness.say("hello from a DM", channel_id=dm)
        replies = await fake.wait_for(lambda: fake.replies(dm), what="an answer in the DM")
        assert replies[0].content.startswith("Sandbox reply #1: hello from a DM")
        await harness.settle()

        assert [m.content for m in fake.replies(channel)] == [texts.NOT_ENABLED_HERE]
        assert harness.completions() == 1  # the DM's, nothing for the other server
        assert len(await turn_rows(harness.store.engine)) == 1

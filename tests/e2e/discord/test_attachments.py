"""Attachments come only from Discord's CDN and only up to the limit; every download failure
is the download sentence, before anything reaches Samsar. A command whose answer could not
be posted is not left "thinking…"."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from bots.discord import texts
from bots.discord.attachments import AttachmentFetcher
from bots.discord.routes import Attachment, InteractionToken, Route
from bots.discord.turns import DiscordTurns
from core.errors import InputRejected
from core.models import ChatUser, ThreadRef, Turn, TurnRequest
from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import ALICE, Harness, option
from tests.fakes import PNG_1PX

UNREADABLE = "That attachment is not an image I can read (PNG, JPEG, WebP or GIF)."
TOO_LARGE = "is too large: the limit is 8 MB."


async def ask_with(harness: Harness, attachment: dict[str, Any]) -> str:
    """A DM with one attachment; the text of the bot's answer."""
    fake = harness.fake
    dm = harness.open_dm(ALICE)
    await harness.say("what is this?", channel_id=dm, attachments=[attachment])
    await fake.wait_for(lambda: fake.replies(dm), what="an answer")
    await harness.settle()
    [answer] = fake.replies(dm)
    return str(answer.content)


async def test_an_attachment_outside_discords_cdn_is_never_fetched(harness: Harness) -> None:
    served = harness.fake.add_attachment(PNG_1PX, "cat.png")
    # The same file, named through another host: a fetch would reach the fake all the same.
    port = harness.fake.base_url.rsplit(":", 1)[1]
    elsewhere = {**served, "url": served["url"].replace(f"127.0.0.1:{port}", f"localhost:{port}")}
    assert await ask_with(harness, elsewhere) == UNREADABLE
    assert harness.completions() == 0 and harness.fake.cdn_fetches == []


async def test_a_download_longer_than_declared_stops_at_the_limit(harness: Harness) -> None:
    endless = harness.fake.add_attachment(PNG_1PX, "tiny.png", behaviour="endless")
    said = await ask_with(harness, endless)  # declared: 67 bytes; sent: no end
    assert said == f"The image tiny.png {TOO_LARGE}"
    assert harness.completions() == 0


async def test_a_connection_reset_during_a_download_is_the_download_sentence(
    harness: Harness,
) -> None:
    reset = harness.fake.add_attachment(PNG_1PX, "cat.png", behaviour="reset")
    assert await ask_with(harness, reset) == UNREADABLE
    assert harness.completions() == 0 and set(harness.fake.cdn_fetches) == {int(reset["id"])}


async def test_an_attachment_declared_too_large_is_refused_before_any_download(
    harness: Harness,
) -> None:
    big = harness.fake.add_attachment(PNG_1PX, "big.png")
    big["size"] = 9 * 1024 * 1024
    assert await ask_with(harness, big) == f"The image big.png {TOO_LARGE}"
    assert harness.completions() == 0 and harness.fake.cdn_fetches == []


class _Posted:
    """core.ports.Posted kept in memory."""

    def __init__(self) -> None:
        self.value = ""

    async def save(self, value: str) -> None:
        self.value = value


async def test_a_command_whose_answer_could_not_be_posted_is_not_left_thinking(
    harness: Harness,
) -> None:
    fake = harness.fake
    payload = fake.new_interaction("chat", [option("prompt", "hi")], who=ALICE)
    fake.interaction(payload).dispatched_at = time.monotonic()  # as if just dispatched
    callback = f"{fake.base_url}/api/v10/interactions/{payload['id']}/{payload['token']}/callback"
    async with aiohttp.ClientSession() as session, session.post(callback, json={"type": 5}):
        pass  # deferred: the member sees "thinking…"
    route = Route(
        channel_id=fake.channel_id,
        guild_id=fake.guild_id,
        user_id=int(ALICE["id"]),
        upload_limit=10 * 1024 * 1024,
        interaction=InteractionToken.fresh(fake.app_id, payload["token"], time.time()),
    )
    user = ChatUser("discord", ALICE["id"])
    thread = ThreadRef("discord", str(fake.guild_id), str(fake.channel_id), "chat-1:pending")
    request = TurnRequest(user=user, thread=thread, text="hi")
    turn = Turn(
        "t1",
        "discord:interaction:1",
        "discord",
        thread.key,
        user.key,
        "ask",
        request=request,
        route=route.dump(),
    )
    turns = DiscordTurns(
        harness.bot,
        harness.bot.service,
        status_every=5,
        attachments=AttachmentFetcher(max_bytes=1),
    )
    await turns.give_up(turn, request, _Posted())
    original = fake.interaction(payload).original
    assert original is not None and original.content == texts.UNDELIVERABLE
    assert not int(original.payload["flags"]) & p.LOADING
    assert fake.replies(fake.channel_id) == [original]  # no second note in the channel


async def test_a_download_slower_than_allowed_is_the_download_sentence(harness: Harness) -> None:
    fake = harness.fake
    slow = fake.add_attachment(PNG_1PX, "slow.png", delay=2.0)
    item = Attachment(slow["url"], "slow.png", "image/png", len(PNG_1PX))
    fetcher = AttachmentFetcher(max_bytes=1024, origins=(fake.base_url,), timeout=0.2)
    with pytest.raises(InputRejected) as refused:
        await fetcher.images([item])
    assert refused.value.reason == InputRejected.IMAGE_UNREADABLE
    assert refused.value.detail == "slow.png"

"""A picture that is not in the answer is said, with what the answer cost, on every surface;
Discord's re-encode of a huge picture never loses the answer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bots import texts
from bots.console.bot import ConsoleBot
from bots.discord import pictures
from bots.discord import render as discord_render
from bots.discord.pictures import CannotFit, fit_image
from core.conversation.service import ConversationConfig, ConversationService
from core.models import (
    ChatUser,
    Credits,
    ImageProblem,
    IncomingMessage,
    Reply,
    ReplyImage,
    ThreadRef,
)
from core.pictures import MAX_PIXELS
from tests.fakes import FakeSamsar, MemoryStore
from tests.turns import driving
from tests.unit.samsar_rig import picture
from tests.unit.test_samsar_answers import png_claiming

ALICE = ChatUser("console", "alice", display_name="Alice")
THREAD = ThreadRef("console", "", "console", "main")
NOT_MADE = (ImageProblem.NOT_MADE,)
SENTENCE = (
    "The image could not be made: Samsar reported a failure. This answer still used 2 credits."
)


async def test_the_service_hands_the_problems_to_the_adapter() -> None:
    samsar = FakeSamsar(cost=1)
    samsar.image_problems = NOT_MADE
    plain = ConversationService(samsar, MemoryStore(), ConversationConfig())
    async with driving(plain) as service:
        reply = await service.imagine(IncomingMessage("k1", ALICE, THREAD, "a cat"))
    assert reply is not None
    assert reply.image_problems == NOT_MADE
    assert reply.credits.charged == 2  # an image call costs double in the fake


async def test_the_console_says_it(tmp_path: Path) -> None:
    samsar = FakeSamsar(cost=1)
    samsar.image_problems = NOT_MADE
    service = ConversationService(samsar, MemoryStore(), ConversationConfig())
    out = io.StringIO()
    bot = ConsoleBot(
        service, user_name="alice", image_dir=tmp_path, stdin=io.StringIO(""), stdout=out
    )
    async with service.worker.serving():
        await bot.handle("/imagine a cat")
    assert SENTENCE in out.getvalue()


async def test_discord_says_it_before_the_credits_line() -> None:
    reply = Reply(
        "Here is your cat!", credits=Credits(charged=2, remaining=98), image_problems=NOT_MADE
    )
    messages = await discord_render.render(reply, upload_limit=10_000_000)
    assert [m.content for m in messages] == [
        "Here is your cat!",
        f"{SENTENCE}\n-# 2 credits used · 98 left",
    ]
    only = await discord_render.render(
        Reply("", credits=Credits(charged=2), image_problems=NOT_MADE), upload_limit=10_000_000
    )
    assert [m.content for m in only] == [f"{SENTENCE}\n-# 2 credits used"]


async def test_discord_delivers_the_answer_when_a_huge_picture_cannot_be_re_encoded() -> None:
    bomb = png_claiming(10_000, 10_000, padding=50_000)
    good = picture("PNG")
    reply = Reply(
        "Two pictures.",
        images=(
            ReplyImage(bomb, "image/png", "huge.png"),
            ReplyImage(good, "image/png", "small.png", "a cat"),
        ),
    )
    messages = await discord_render.render(reply, upload_limit=40_000)
    assert messages[0].content == "Two pictures."
    assert "huge.png could not be made small enough" in messages[1].content
    assert [u.data for m in messages for u in m.uploads] == [good]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("width", "height"),
    [
        (10_000, 10_000),  # past twice the pixel bound: Pillow refuses to open it (a bomb)
        (7_000, 7_000),  # past the bound, below twice it: opened, but never decoded
    ],
)
def test_fit_image_never_decodes_a_picture_past_the_pixel_bound(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    assert width * height > MAX_PIXELS
    decoded: list[object] = []
    monkeypatch.setattr(pictures, "_flatten", decoded.append)
    with pytest.raises(CannotFit):
        fit_image(png_claiming(width, height), "huge.png", limit=10)
    assert decoded == []


def test_a_long_answer_file_is_cut_to_the_upload_limit() -> None:
    text = "é" * 30_000  # 60,000 bytes of UTF-8, far past 5 messages
    messages = discord_render.text_messages(text, upload_limit=10_001)
    assert len(messages) == discord_render.TEXT_MESSAGES
    [upload] = messages[-1].uploads
    assert upload.filename == texts.ANSWER_FILE
    assert len(upload.data) <= 10_001
    assert upload.data.decode("utf-8").endswith("[cut at Discord's upload limit]\n")

"""The console bot on fakes: progress during a long call, errors as lines, commands."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from bots.console.bot import ConsoleBot
from core.conversation.service import ConversationConfig, ConversationService
from tests.fakes import FakeSamsar, MemoryStore


@contextlib.asynccontextmanager
async def make_bot(
    tmp_path: Path, samsar: FakeSamsar, lines: str
) -> AsyncIterator[tuple[ConsoleBot, io.StringIO]]:
    service = ConversationService(samsar, MemoryStore(), ConversationConfig())
    out = io.StringIO()
    bot = ConsoleBot(
        service,
        user_name="tester",
        image_dir=tmp_path / "images",
        stdin=io.StringIO(lines),
        stdout=out,
        progress_every=0.01,
    )
    async with service.worker.serving():
        yield bot, out


async def test_a_long_call_shows_elapsed_time_until_the_answer(tmp_path: Path) -> None:
    samsar = FakeSamsar()
    samsar.gate = asyncio.Event()
    async with make_bot(tmp_path, samsar, "") as (bot, out):
        task = asyncio.create_task(bot.handle("slow question"))
        async with asyncio.timeout(5):
            # Polls the output under the deadline above.
            while out.getvalue().count("still working") < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        samsar.gate.set()
        await task
        text = out.getvalue()
        assert text.index("still working") < text.index("echo: slow question")


async def test_imagine_writes_the_file_and_errors_become_lines(tmp_path: Path) -> None:
    samsar = FakeSamsar(start_credits=2)
    async with make_bot(tmp_path, samsar, "/imagine a fox\n/imagine another\n/quit\n") as (
        bot,
        out,
    ):
        await bot.run()
        text = out.getvalue()
        (written,) = (tmp_path / "images").iterdir()
        assert f"[image] {written.resolve()} — a revised prompt" in text
        assert "! You're out of credits for this (you have 0 left)." in text
        assert "/buy <credits>" in text and text.rstrip().endswith("Bye.")


async def test_persona_and_prompt_commands(tmp_path: Path) -> None:
    samsar = FakeSamsar()
    script = "/persona set Be a pirate\n/persona\n/prompt set channel Be brief\n/prompt show\n"
    async with make_bot(tmp_path, samsar, script) as (bot, out):
        await bot.run()
        text = out.getvalue()
        assert "Your persona: Be a pirate" in text
        assert "Instructions from the admins for this channel:\nBe brief" in text


async def test_at_a_terminal_what_the_member_typed_is_what_is_sent(tmp_path: Path) -> None:
    samsar = FakeSamsar()
    service = ConversationService(samsar, MemoryStore(), ConversationConfig())
    with create_pipe_input() as keys:
        editor: PromptSession[str] = PromptSession(input=keys, output=DummyOutput())
        bot = ConsoleBot(
            service, user_name="tester", image_dir=tmp_path, stdout=io.StringIO(), editor=editor
        )
        # A typo fixed with the left arrow, then a paste longer than a terminal line allows.
        keys.send_text("hell\x1b[DX\r")
        keys.send_text("a" * 5000 + "\r")
        keys.send_text("/quit\r")
        async with service.worker.serving(), asyncio.timeout(10):
            await bot.run()
    sent = [call.request.text for call in samsar.calls if call.request is not None]
    assert sent == ["helXl", "a" * 5000]


async def test_ctrl_c_at_the_terminal_prompt_leaves(tmp_path: Path) -> None:
    samsar = FakeSamsar()
    service = ConversationService(samsar, MemoryStore(), ConversationConfig())
    out = io.StringIO()
    with create_pipe_input() as keys:
        editor: PromptSession[str] = PromptSession(input=keys, output=DummyOutput())
        bot = ConsoleBot(service, user_name="tester", image_dir=tmp_path, stdout=out, editor=editor)
        keys.send_text("\x03")  # Ctrl-C, read as a key by the editor
        async with service.worker.serving(), asyncio.timeout(10):
            await bot.run()
    assert out.getvalue().rstrip().endswith("Bye.") and samsar.calls == []

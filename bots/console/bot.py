"""The console bot: a terminal chat on the same core, one line at a time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import TextIO, TypeVar

from prompt_toolkit import PromptSession

from bots import texts
from bots.console.channel import COMMANDS, ConsoleChannel
from bots.image_flags import split_image_flags
from core.conversation.prompts import EffectivePrompt
from core.conversation.service import ConversationService
from core.errors import BotError, InputRejected
from core.models import ChatUser, ImageChoice, PromptScope, ThreadRef, TurnKind, TurnRequest

T = TypeVar("T")
WORKSPACE = "console"
USAGE_IMAGINE = (
    "Usage: /imagine [--size WxH] [--quality auto|low|medium|high] [--format png|jpeg|webp] "
    "<prompt>"
)


def _lines(source: TextIO) -> asyncio.Queue[str | None]:
    """The lines of `source`, read in a daemon thread (a blocked read never keeps the process
    from ending); None once the input ends."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed first: the console has ended
            for line in iter(source.readline, ""):
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="console-input", daemon=True).start()
    return queue


class ConsoleBot:
    """Reads lines, runs them through the conversation service, prints answers and image paths."""

    def __init__(
        self,
        service: ConversationService,
        *,
        user_name: str,
        image_dir: Path,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
        progress_every: float | None = None,
        grace: float = 120.0,
        editor: PromptSession[str] | None = None,
    ) -> None:
        self._service = service
        self._grace = grace
        self._waiting_for: str | None = None  # the turn whose answer the member waits for
        # The console member administers their own console workspace.
        self._user = ChatUser(
            platform="console",
            user_id=user_name,
            workspace_id=WORKSPACE,
            display_name=user_name,
            is_admin=True,
        )
        self._thread = ThreadRef("console", WORKSPACE, "terminal", user_name)
        self._image_dir = image_dir
        self._in = stdin
        self._out = stdout
        self._tty = stdout.isatty()
        # A terminal gets a real line editor (history, arrows, long pastes sent whole); piped
        # input is read as lines.
        if editor is None and stdin.isatty() and self._tty:
            editor = PromptSession()
        self._editor = editor
        # A terminal gets a live counter each second; a pipe a line every few seconds.
        self._progress_every = progress_every or (1.0 if self._tty else 5.0)
        self._channel = ConsoleChannel(self.say, image_dir)
        service.worker.attach("console", self._channel)

    def say(self, text: str) -> None:
        """Print one block of output."""
        self._out.write(text.rstrip("\n") + "\n")
        self._out.flush()

    async def run(self) -> None:
        """Chat until /quit, end of input, or a signal. On SIGINT (Ctrl-C) or SIGTERM an answer
        in progress is still waited for (up to the shutdown grace) and shown; a second signal
        leaves at once, and that answer is shown when the console starts again."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals: list[int] = []

        def on_signal(signum: int) -> None:
            signals.append(signum)
            if len(signals) > 1:
                self.say("Leaving now; the answer will be shown next time.")
                os._exit(128 + signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        self.say("Samsar console. Type a message, /help for commands, /quit to leave.")
        chat = asyncio.create_task(self._chat())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({chat, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set() and not chat.done():
                if self._waiting_for is not None:
                    self.say(
                        "Stopping: the answer in progress is still coming "
                        "(Ctrl-C again to leave now; it will be shown next time)."
                    )
                    await self._service.worker.drain(self._grace)
                chat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chat
        finally:
            stopping.cancel()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        self.say("Bye.")

    async def _chat(self) -> None:
        lines = _lines(self._in) if self._editor is None else None
        while True:
            line = await self._next_line(lines)
            if line is None:
                return
            line = line.strip()
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return
            try:
                await self.handle(line)
            except BotError as exc:
                self.say(f"! {texts.describe(exc, COMMANDS)}")

    async def _next_line(self, lines: asyncio.Queue[str | None] | None) -> str | None:
        """The member's next line; None when they leave (end of input, Ctrl-D, or Ctrl-C at
        the prompt, which the editor reads as a key)."""
        if self._editor is None:
            assert lines is not None
            if self._tty:
                self._out.write("> ")
                self._out.flush()
            return await lines.get()
        try:
            return await self._editor.prompt_async("> ")
        except (EOFError, KeyboardInterrupt):
            return None

    async def handle(self, line: str) -> None:
        """Run one line: a message or a command."""
        if not line.startswith("/"):
            await self._turn(line, TurnKind.ASK)
            return
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        handler = {
            "/imagine": self._imagine,
            "/reset": self._reset,
            "/credits": self._credits,
            "/buy": self._buy,
            "/studio": self._studio,
            "/persona": self._persona,
            "/prompt": self._prompt,
            "/help": self._help,
        }.get(name)
        if handler is None:
            self.say(f"Unknown command {name}. Type /help.")
            return
        await handler(rest)

    async def _turn(self, text: str, kind: TurnKind, choice: ImageChoice | None = None) -> None:
        """Record the turn, then wait (showing the time) until the worker printed its outcome."""
        request = TurnRequest(user=self._user, thread=self._thread, text=text, kind=kind)
        turn = await self._service.submit(f"console:{uuid.uuid4().hex}", request, choice=choice)
        if turn is not None:
            self._waiting_for = turn.turn_id
            try:
                await self._with_progress(self._channel.expect(turn.turn_id))
            finally:
                self._waiting_for = None

    async def _with_progress(self, call: Awaitable[T]) -> T:
        """Await `call`, showing elapsed seconds meanwhile so a long call is never a silent wait."""
        task = asyncio.ensure_future(call)
        elapsed = 0.0
        while True:
            done, _ = await asyncio.wait({task}, timeout=self._progress_every)
            if done:
                break
            elapsed += self._progress_every
            if self._tty:
                self._out.write(f"\r… working ({elapsed:.0f}s)")
                self._out.flush()
            else:
                self.say(f"… still working ({elapsed:.1f}s)")
        if self._tty and elapsed:
            self._out.write("\r" + " " * 24 + "\r")
        return task.result()

    async def _imagine(self, rest: str) -> None:
        choice, prompt = split_image_flags(rest, USAGE_IMAGINE)
        if not prompt:
            raise InputRejected(InputRejected.EMPTY)
        await self._turn(prompt, TurnKind.IMAGINE, choice)

    async def _reset(self, _: str) -> None:
        await self._service.reset(self._user, self._thread)
        self.say("Started a fresh conversation.")

    async def _credits(self, _: str) -> None:
        balance = await self._with_progress(self._service.credits(self._user))
        self.say(texts.balance_text(balance.remaining))

    async def _buy(self, rest: str) -> None:
        if not rest.isdigit():
            raise InputRejected(InputRejected.USAGE, detail="Usage: /buy <credits>")
        link = await self._with_progress(
            self._service.buy(self._user, int(rest), event_key=uuid.uuid4().hex)
        )
        self.say(f"Buy {link.credits} credits here: {link.url}")

    async def _studio(self, _: str) -> None:
        link = await self._service.studio_link(self._user, event_key=uuid.uuid4().hex)
        self.say(f"Your Studio login link (short-lived): {link.url}")

    async def _persona(self, rest: str) -> None:
        action, _, text = rest.partition(" ")
        if action == "set" and text.strip():
            await self._service.persona_set(self._user, text, event_key=uuid.uuid4().hex)
            self.say("Your persona is set; it applies to your next messages.")
        elif action == "clear":
            await self._service.persona_set(self._user, None, event_key=uuid.uuid4().hex)
            self.say("Your persona is cleared.")
        elif action in ("", "show"):
            persona = await self._service.persona_show(self._user)
            self.say(f"Your persona: {persona}" if persona else "You have no persona set.")
        else:
            self.say("Usage: /persona set <text> | show | clear")

    async def _prompt(self, rest: str) -> None:
        action, _, tail = rest.partition(" ")
        scope_word, _, text = tail.strip().partition(" ")
        if scope_word in ("workspace", "channel"):
            scope = PromptScope(scope_word)
        else:
            scope, text = PromptScope.WORKSPACE, tail.strip()
        admin = self._service.admin
        if action == "set" and text.strip():
            await admin.prompt_set(self._user, self._thread, scope, text)
            self.say(f"The {scope.value} prompt is set; it reaches each conversation's next turn.")
        elif action == "clear":
            removed = await admin.prompt_clear(self._user, self._thread, scope)
            self.say(f"The {scope.value} prompt is cleared." if removed else "There was none.")
        elif action in ("", "show"):
            shown = await admin.prompt_show(self._user, self._thread, None)
            text_now = shown.text if isinstance(shown, EffectivePrompt) else None
            self.say(text_now or "No admin prompt is set.")
        else:
            self.say("Usage: /prompt set [workspace|channel] <text> | show | clear [scope]")

    async def _help(self, _: str) -> None:
        self.say(texts.HELP_CONSOLE)

"""The console bot: a terminal chat on the same core, one line at a time."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import TextIO, TypeVar

from bots import texts
from bots.image_flags import split_image_flags
from core.conversation.prompts import EffectivePrompt
from core.conversation.service import ConversationService
from core.errors import BotError, InputRejected
from core.models import ChatUser, IncomingMessage, PromptScope, Reply, ThreadRef

T = TypeVar("T")
WORKSPACE = "console"
COMMANDS = texts.Commands(buy="/buy", new_chat="/reset", reset="/reset")


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
    ) -> None:
        self._service = service
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
        # A terminal gets a live counter each second; a pipe a line every few seconds.
        self._progress_every = progress_every or (1.0 if self._tty else 5.0)

    def say(self, text: str) -> None:
        """Print one block of output."""
        self._out.write(text.rstrip("\n") + "\n")
        self._out.flush()

    async def run(self) -> None:
        """Chat until /quit or end of input."""
        self.say("Samsar console. Type a message, /help for commands, /quit to leave.")
        while True:
            if self._tty:
                self._out.write("> ")
                self._out.flush()
            line = await asyncio.to_thread(self._in.readline)
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            try:
                await self.handle(line)
            except BotError as exc:
                self.say(f"! {texts.describe(exc, COMMANDS)}")
        self.say("Bye.")

    async def handle(self, line: str) -> None:
        """Run one line: a message or a command."""
        if not line.startswith("/"):
            await self._answer(self._service.ask(self._message(line)))
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

    def _message(self, text: str) -> IncomingMessage:
        return IncomingMessage(
            event_key=f"console:{uuid.uuid4().hex}", user=self._user, thread=self._thread, text=text
        )

    async def _answer(self, call: Awaitable[Reply | None]) -> None:
        reply = await self._with_progress(call)
        if reply is None:
            return
        if reply.text:
            self.say(reply.text)
        self._image_dir.mkdir(parents=True, exist_ok=True)
        for image in reply.images:
            path = self._image_dir / image.filename
            path.write_bytes(image.data)
            caption = f" — {image.revised_prompt}" if image.revised_prompt else ""
            self.say(f"[image] {path.resolve()}{caption}")
        if problems := texts.image_problems_line(reply.image_problems, reply.credits):
            self.say(problems)
        line = texts.credits_line(reply.credits)
        if line:
            self.say(f"  ({line})")

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
        choice, prompt = split_image_flags(rest)
        if not prompt:
            raise InputRejected(InputRejected.EMPTY)
        await self._answer(self._service.imagine(self._message(prompt), choice))

    async def _reset(self, _: str) -> None:
        await self._service.reset(self._user, self._thread)
        self.say("Started a fresh conversation.")

    async def _credits(self, _: str) -> None:
        balance = await self._with_progress(self._service.credits(self._user))
        self.say(texts.balance_text(balance.remaining))

    async def _buy(self, rest: str) -> None:
        if not rest.isdigit():
            raise InputRejected(InputRejected.BAD_VALUE, detail="usage: /buy <credits>")
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

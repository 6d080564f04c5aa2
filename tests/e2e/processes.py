"""`samsar-bot run` as a real subprocess, pointed at the fakes and the sandbox that live in the
test process (so they outlive a killed bot). SIGKILL, SIGTERM and restarts as an operator's
process manager would do them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.app import RunningSandbox
from tests.e2e.discord.fake_discord import TOKEN as DISCORD_TOKEN
from tests.e2e.discord.fake_discord import FakeDiscord
from tests.e2e.slack.fake_records import APP_TOKEN, BOT_TOKEN
from tests.e2e.slack.fake_slack import FakeSlack

BIN = Path(sys.executable).parent / "samsar-bot"


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1 (for a bot process to bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Setup:
    """What a bot process talks to: the sandbox, a database, and the fakes it is given."""

    sandbox: RunningSandbox
    database_url: str
    data_dir: Path
    discord: FakeDiscord | None = None
    slack: FakeSlack | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """A clean environment: nothing of the developer's SAMSAR_/DISCORD_/SLACK_ settings."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.data_dir),
            "SAMSAR_API_KEY": self.sandbox.api_key,
            "SAMSAR_BASE_URL": self.sandbox.base_url,
            "SAMSAR_RETRY_ATTEMPTS": "2",
            "DATABASE_URL": self.database_url,
            "DATA_DIR": str(self.data_dir),
            "TURN_LEASE_SECONDS": "2",
            "LOG_LEVEL": "INFO",
        }
        if self.discord is not None:
            env |= {
                "DISCORD_TOKEN": DISCORD_TOKEN,
                "DISCORD_GUILD_IDS": str(self.discord.guild_id),
                "DISCORD_API_URL": f"{self.discord.base_url}/api/v10",
                "DISCORD_GATEWAY_URL": self.discord.gateway.url,
            }
        if self.slack is not None:
            env |= {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_APP_TOKEN": APP_TOKEN,
                "SLACK_API_URL": self.slack.api_url,
            }
        return env | self.extra


class BotProcess:
    """One `samsar-bot run`; its output goes to `log_path`."""

    def __init__(self, setup: Setup, log_path: Path, extra: Mapping[str, str] = {}) -> None:
        self._env = setup.env() | dict(extra)
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it (the log is appended to: a restart keeps the earlier lines)."""
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(BIN),
                "run",
                env=self._env,
                cwd=self.log_path.parent,  # no developer's .env is read
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._process is not None
        return self._process.pid

    def send(self, signum: int) -> None:
        """Send a signal (SIGTERM, SIGINT, SIGKILL)."""
        assert self._process is not None
        self._process.send_signal(signum)

    async def wait(self, within: float = 30.0) -> int:
        """Its exit code, once it has exited."""
        assert self._process is not None
        async with asyncio.timeout(within):
            return await self._process.wait()

    async def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill would end it."""
        self.send(signal.SIGKILL)
        await self.wait()

    @property
    def running(self) -> bool:
        """Not exited yet."""
        return self._process is not None and self._process.returncode is None

    def log(self) -> str:
        """Everything it wrote."""
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, text: str, within: float = 30.0, *, count: int = 1) -> None:
        """Until `text` appears `count` times in its output (restarts append to it)."""
        async with asyncio.timeout(within):
            while self.log().count(text) < count:
                if not self.running:
                    raise AssertionError(f"the bot exited:\n{self.log()[-3000:]}")
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def bot_process(
    setup: Setup, log_path: Path, extra: Mapping[str, str] = {}
) -> AsyncIterator[BotProcess]:
    """A started bot, killed at the end if it is still running."""
    bot = BotProcess(setup, log_path, extra)
    await bot.start()
    try:
        yield bot
    finally:
        if bot.running:
            await bot.kill()


async def completion_in_flight(sandbox: RunningSandbox, within: float = 20.0) -> None:
    """Until the sandbox is working on a completion it has not answered yet."""
    state = sandbox.state
    async with asyncio.timeout(within):
        while not any(  # noqa: ASYNC110 (polling the sandbox's state under the deadline)
            route.endswith("assistant/completion") and entry.response is None
            for (route, _), entry in state.idempotency.items()
        ):
            await asyncio.sleep(0.01)

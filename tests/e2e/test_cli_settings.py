"""A setting that cannot work ends any `samsar-bot` command as one line that names it: exit 2,
no traceback, never the secret (a DATABASE_URL's password)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.test_cli import samsar_bot

SECRET = "pw-s3cret-0042"
PG_URL = os.environ.get("TEST_DATABASE_URL") or None
# Enough for `run` to get as far as the database (a platform and a key), and for `console`
# to get there without a terminal. Nothing but the database is ever reached; should a check
# be broken, the rest points at a closed port here, never at Discord or Samsar.
NOWHERE = "http://127.0.0.1:9"
START = {
    "SAMSAR_API_KEY": "sk-test-key",
    "SAMSAR_BASE_URL": f"{NOWHERE}/v1",
    "DISCORD_TOKEN": "discord-token",
    "DISCORD_API_URL": f"{NOWHERE}/api/v10",
    "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/",
}
COMMANDS = {
    "run": ("run",),
    "console": ("console",),
    "db upgrade": ("db", "upgrade"),
    "prompt set": ("prompt", "set", "--account", "Be kind."),
}


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (a connection there is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A port on 127.0.0.1 that accepts connections and never says a word."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


def pg_url(port: int, user: str = "samsar") -> str:
    return f"postgresql+asyncpg://{user}:{SECRET}@127.0.0.1:{port}/samsar"


async def one_line_each(
    tmp_path: Path, commands: Iterable[str], *, logged_before: bool = False, **env: str
) -> dict[str, str]:
    """Run the commands side by side; assert each ended as one line on stderr with exit 2 (no
    traceback, no secret; with `logged_before`, after the log lines of a start that got that
    far); return each one's line."""

    async def one(command: str) -> tuple[str, str]:
        code, out, err = await samsar_bot(tmp_path, *COMMANDS[command], **(START | env))
        assert code == 2, f"{command}: {err}"
        assert "Traceback" not in err and "Traceback" not in out, f"{command}: {err}"
        assert SECRET not in err and SECRET not in out, command
        lines = err.strip().splitlines()
        assert logged_before or len(lines) == 1, f"{command}: {err}"
        return command, lines[-1]

    return dict(await asyncio.gather(*(one(command) for command in commands)))


async def test_postgres_refusing_names_database_url(tmp_path: Path) -> None:
    port = closed_port()
    said = await one_line_each(tmp_path, COMMANDS, DATABASE_URL=pg_url(port))
    expected = (
        f"Check DATABASE_URL: PostgreSQL at 127.0.0.1:{port}/samsar refused the connection"
        " (is the server running, on that port?)."
    )
    assert said == dict.fromkeys(COMMANDS, expected)


async def test_sqlite_in_an_unwritable_data_dir_names_data_dir(tmp_path: Path) -> None:
    # A folder under a plain file cannot be made, even by root (who may write anywhere else).
    (tmp_path / "blocker").write_text("a file, not a folder")
    data_dir = tmp_path / "blocker" / "data"
    said = await one_line_each(tmp_path, COMMANDS, DATA_DIR=str(data_dir))
    for command, line in said.items():
        assert line.startswith("Check DATA_DIR: ") and str(data_dir) in line, command
        assert "Not a directory" in line, command


async def test_a_database_file_that_cannot_be_opened_names_data_dir(tmp_path: Path) -> None:
    (tmp_path / "data" / "samsar-bots.db").mkdir(parents=True)  # in the database file's place
    said = await one_line_each(tmp_path, ["db upgrade"])
    assert said["db upgrade"] == (
        f"Check DATA_DIR: the SQLite database {tmp_path / 'data' / 'samsar-bots.db'} cannot be"
        " opened: unable to open database file."
    )


async def test_postgres_not_answering_names_database_url(tmp_path: Path) -> None:
    async with silent_server() as port:
        said = await one_line_each(
            tmp_path, ["run"], DATABASE_URL=pg_url(port), DATABASE_CONNECT_TIMEOUT="0.5"
        )
    assert said["run"] == (
        f"Check DATABASE_URL: PostgreSQL at 127.0.0.1:{port}/samsar did not answer within 0.5 s."
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            f"mysql+aiomysql://samsar:{SECRET}@127.0.0.1/samsar",
            "Check DATABASE_URL: 'mysql' is not a database the bot uses (use postgresql+asyncpg://",
            id="unknown-database",
        ),
        pytest.param(
            f"postgresql+psycopg2://samsar:{SECRET}@127.0.0.1/samsar",
            "Check DATABASE_URL: postgresql is used through the asyncpg driver, not 'psycopg2'",
            id="unknown-driver",
        ),
        pytest.param(
            f"samsar:{SECRET}@127.0.0.1:5432/samsar",
            "Check DATABASE_URL: it is not a database URL (use postgresql+asyncpg://",
            id="garbage",
        ),
    ],
)
async def test_a_bad_database_url_names_it(tmp_path: Path, url: str, expected: str) -> None:
    said = await one_line_each(tmp_path, ["run"], DATABASE_URL=url)
    assert said["run"].startswith(expected)


@pytest.mark.skipif(PG_URL is None, reason="TEST_DATABASE_URL is not set")
async def test_postgres_refusing_the_login_names_database_url(tmp_path: Path) -> None:
    assert PG_URL is not None
    url = pg_url(make_url(PG_URL).port or 5432, user="no_such_role_here")
    said = await one_line_each(tmp_path, ["run"], DATABASE_URL=url)
    assert said["run"].startswith("Check DATABASE_URL: PostgreSQL at 127.0.0.1:")
    assert 'role "no_such_role_here" does not exist' in said["run"]


async def test_invalid_settings_are_one_line_naming_each(tmp_path: Path) -> None:
    said = await one_line_each(
        tmp_path, ["run", "console"], IMAGE_SIZE="huge", LOG_LEVEL="chatty", DATABASE_URL=pg_url(1)
    )
    for command, line in said.items():
        assert line.startswith("Invalid setting IMAGE_SIZE: size must be auto or"), command
        assert "Invalid setting LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR" in line


async def test_a_health_port_taken_names_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = await one_line_each(tmp_path, ["run"], logged_before=True, HEALTH_PORT=str(port))
    assert said["run"].startswith(
        f"Check HEALTH_PORT and HEALTH_HOST: cannot listen on 127.0.0.1:{port}: "
    )


async def test_listening_addresses_are_checked(tmp_path: Path) -> None:
    said = await one_line_each(tmp_path, ["run"], SLACK_HOST="http://0.0.0.0", HEALTH_HOST="a b")
    assert said["run"] == (
        "Invalid setting SLACK_HOST: must be an address (0.0.0.0, 127.0.0.1, ::) or a host name."
        " Invalid setting HEALTH_HOST: must be an address (0.0.0.0, 127.0.0.1, ::) or a host"
        " name."
    )


async def test_discord_server_ids_must_be_numbers(tmp_path: Path) -> None:
    said = await one_line_each(tmp_path, ["run"], DISCORD_ALLOWED_GUILDS="123, my-server")
    assert said["run"] == (
        "Invalid setting DISCORD_ALLOWED_GUILDS: must be Discord server ids (numbers),"
        " separated by commas."
    )

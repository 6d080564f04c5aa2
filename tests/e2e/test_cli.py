"""The `samsar-bot` commands an operator runs, as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

from sandbox.app import running_sandbox

BIN = str(Path(sys.executable).parent / "samsar-bot")


async def samsar_bot(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the event loop (the sandbox may be serving meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        BIN,
        *args,
        env={"PATH": os.environ.get("PATH", ""), "DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_run_without_credentials_names_the_settings(tmp_path: Path) -> None:
    # Every variable as .env.example ships it: the secrets are blank, so nothing is configured.
    example = (Path(__file__).parents[2] / ".env.example").read_text().splitlines()
    blank = dict(line.split("=", 1) for line in example if line and not line.startswith("#"))
    blank = {name: value for name, value in blank.items() if name != "DATA_DIR"}
    code, _, err = await samsar_bot(tmp_path, "run", **blank)
    assert code == 2
    for name in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        assert name in err


async def test_db_upgrade_creates_the_embedded_database(tmp_path: Path) -> None:
    code, out, err = await samsar_bot(tmp_path, "db", "upgrade")
    assert code == 0, err
    assert "up to date" in out
    with sqlite3.connect(tmp_path / "data" / "samsar-bots.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
    assert {"external_users", "thread_sessions", "admin_prompts", "turns", "audit_log"} <= tables


async def test_account_prompt_reaches_samsar_and_the_audit_log(tmp_path: Path) -> None:
    async with running_sandbox() as sandbox:
        env = {"SAMSAR_API_KEY": sandbox.api_key, "SAMSAR_BASE_URL": sandbox.base_url}
        code, _, err = await samsar_bot(tmp_path, "prompt", "set", "--account", "Be kind.", **env)
        assert code == 0, err
        assert sandbox.state.account_prompt == "Be kind."
        code, _, err = await samsar_bot(tmp_path, "prompt", "clear", **env)
        assert code == 0, err
        assert not sandbox.state.account_prompt
    with sqlite3.connect(tmp_path / "data" / "samsar-bots.db") as db:
        actions = [row[0] for row in db.execute("select action from audit_log order by id")]
    assert actions == ["account_prompt.set", "account_prompt.clear"]


async def test_a_refused_api_key_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    async with running_sandbox() as sandbox:
        env = {"SAMSAR_API_KEY": "wrong-key", "SAMSAR_BASE_URL": sandbox.base_url}
        code, _, err = await samsar_bot(tmp_path, "prompt", "set", "--account", "x", **env)
    assert code == 2
    assert "Samsar key was refused" in err and "Traceback" not in err
    assert "wrong-key" not in err


async def test_debug_logs_never_show_the_api_key(tmp_path: Path) -> None:
    from sandbox.state import SandboxConfig

    secret = "sk-live-0123456789abcdef"
    async with running_sandbox(SandboxConfig(api_key=secret)) as sandbox:
        env = {"SAMSAR_API_KEY": secret, "SAMSAR_BASE_URL": sandbox.base_url, "LOG_LEVEL": "DEBUG"}
        code, out, err = await samsar_bot(tmp_path, "prompt", "set", "--account", "Hi", **env)
    assert code == 0, err
    assert "samsar_route" in err  # the client did log its calls at DEBUG
    assert secret not in err and secret not in out


async def test_json_logs_are_one_object_per_line_without_the_api_key(tmp_path: Path) -> None:
    from sandbox.state import SandboxConfig

    secret = "sk-live-0123456789abcdef"
    async with running_sandbox(SandboxConfig(api_key=secret)) as sandbox:
        env = {
            "SAMSAR_API_KEY": secret,
            "SAMSAR_BASE_URL": sandbox.base_url,
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
        }
        code, out, err = await samsar_bot(tmp_path, "prompt", "set", "--account", "Hi", **env)
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines()]  # each line is one object
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    opened = next(r for r in records if r["message"] == "store open")
    assert opened["level"] == "INFO" and opened["logger"] == "storage.store"
    assert opened["database"].startswith("sqlite+aiosqlite:///")  # an `extra` field
    assert datetime.fromisoformat(opened["time"]).tzinfo is not None
    assert any("samsar_route" in r for r in records)  # the client's DEBUG lines, with fields
    assert secret not in err and secret not in out


async def test_operator_grants_credits_to_a_member(tmp_path: Path) -> None:
    async with running_sandbox() as sandbox:
        env = {"SAMSAR_API_KEY": sandbox.api_key, "SAMSAR_BASE_URL": sandbox.base_url}
        code, out, err = await samsar_bot(tmp_path, "credits", "grant", "slack:T1:U7", "40", **env)
        assert code == 0, err
        assert sandbox.state.balance("slack", "slack:T1:U7") == 140
        assert "Granted 40 credits to slack:T1:U7. You have 140 credits." in out
        code, _, err = await samsar_bot(tmp_path, "credits", "grant", "slack:U7", "40", **env)
        assert code == 2 and "is not a member key" in err


async def sandbox_credits(
    *options: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Start `samsar-bot sandbox` on a free port (in `cwd`); a new external user's credits
    there."""
    import socket

    import httpx

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        BIN,
        "sandbox",
        "--port",
        str(port),
        *options,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        body = {"external_user": {"provider": "console", "external_user_id": "console:x"}}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v1") as client:
            async with asyncio.timeout(30):
                while True:  # polls until the server is up, under the deadline
                    try:
                        answer = await client.post(
                            "external_users/session",
                            json=body,
                            headers={"Authorization": "Bearer sandbox-key"},
                        )
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.1)
        assert answer.status_code == 200
        return float(answer.json()["remainingCredits"])
    finally:
        process.terminate()
        await process.wait()


async def test_sandbox_command_serves_the_offline_samsar(tmp_path: Path) -> None:
    assert await sandbox_credits("--start-credits", "7", cwd=tmp_path) == 7


async def test_sandbox_command_takes_its_credits_from_the_setting(tmp_path: Path) -> None:
    env = {"SANDBOX_START_CREDITS": "33", "HOME": str(tmp_path)}
    assert await sandbox_credits(env=env, cwd=tmp_path) == 33


async def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# as .env.example suggests\nSANDBOX_START_CREDITS=21\n")
    env = {"HOME": str(tmp_path)}
    assert await sandbox_credits(env=env, cwd=tmp_path) == 21
    env["SANDBOX_START_CREDITS"] = "33"
    assert await sandbox_credits(env=env, cwd=tmp_path) == 33


async def test_a_grant_run_again_with_its_key_is_granted_once(tmp_path: Path) -> None:
    async with running_sandbox() as sandbox:
        env = {"SAMSAR_API_KEY": sandbox.api_key, "SAMSAR_BASE_URL": sandbox.base_url}
        for _ in range(2):
            code, _, err = await samsar_bot(
                tmp_path, "credits", "grant", "discord:9", "25", "--idempotency-key", "k-1", **env
            )
            assert code == 0, err
        assert sandbox.state.balance("discord", "discord:9") == 125


async def test_an_interrupted_grant_never_says_it_was_granted(tmp_path: Path) -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()  # a Samsar that takes the request and never answers
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        process = await asyncio.create_subprocess_exec(
            BIN,
            "credits",
            "grant",
            "discord:9",
            "25",
            env={
                "PATH": os.environ.get("PATH", ""),
                "DATA_DIR": str(tmp_path / "data"),
                "SAMSAR_API_KEY": "k",
                "SAMSAR_BASE_URL": f"http://127.0.0.1:{port}/v1",
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            await accepted.wait()
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    assert process.returncode == 130
    assert "Granted" not in out.decode()
    key = re.search(r"--idempotency-key (\w+)", err.decode())
    assert key is not None, err.decode()  # the key to run it again with, once


async def test_version_is_printed(tmp_path: Path) -> None:
    code, out, _ = await samsar_bot(tmp_path, "--version")
    assert code == 0 and re.fullmatch(r"samsar-bot \d+\.\d+\.\d+\S*\n", out)

"""`run_slack` as `samsar-bot run` starts it: Socket Mode from the settings, until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import httpx
import pytest

from bots.bootstrap import MissingSettingError, SettingUnusable, wire
from bots.slack.app import SlackOptions, slack_client
from bots.slack.transport import is_fatal, run_slack
from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import settings
from tests.e2e.slack.fake_records import APP_TOKEN, BOT_TOKEN
from tests.e2e.slack.fake_slack import running_fake_slack
from tests.e2e.slack.payloads import ALICE, CHANNEL


async def test_run_slack_answers_over_socket_mode_until_cancelled(tmp_path: Path) -> None:
    config = settings(slack_app_token=APP_TOKEN, data_dir=tmp_path, sandbox_start_credits=7)
    async with running_fake_slack() as fake, wire(config, sandbox=True) as app:
        fake.add_user(ALICE, "Alice")
        client = slack_client(BOT_TOKEN, base_url=fake.api_url)
        options = SlackOptions(progress_every=0.2, file_origins=(fake.url,))
        running = asyncio.create_task(run_slack(app, client=client, options=options))
        await fake.socket.connected()
        at = payloads.ts()
        envelope = await fake.socket.send("events_api", payloads.mention("hi", at=at))
        await fake.wait_until(lambda: envelope in fake.socket.acks)
        await fake.wait_until(lambda: any("credit" in m.context_text() for m in fake.messages))
        [answer] = fake.thread(CHANNEL, at)
        assert answer.context_text() == "1 credit used · 6 left"
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await fake.wait_until(lambda: not fake.socket.connections)


async def test_run_slack_names_the_missing_setting(tmp_path: Path) -> None:
    config = settings(slack_signing_secret=None, data_dir=tmp_path)
    async with wire(config, sandbox=True) as app:
        with pytest.raises(MissingSettingError, match="SLACK_APP_TOKEN or SLACK_SIGNING_SECRET"):
            await run_slack(app)


async def test_run_slack_listens_on_slack_host(tmp_path: Path) -> None:
    host = "127.0.0.2"  # loopback too, but not the address the default would show up on
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    config = settings(slack_host=host, slack_port=port, data_dir=tmp_path)
    async with running_fake_slack() as fake, wire(config, sandbox=True) as app:
        client = slack_client(BOT_TOKEN, base_url=fake.api_url)
        running = asyncio.create_task(run_slack(app, client=client))
        try:
            async with httpx.AsyncClient() as http, asyncio.timeout(10):
                while True:  # polls until it listens, under the deadline
                    try:
                        answer = await http.get(f"http://{host}:{port}/healthz")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
                assert answer.status_code == 200
                with pytest.raises(httpx.ConnectError):
                    await http.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def test_a_port_already_taken_is_an_unusable_setting_not_a_restart_loop(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = settings(slack_host="127.0.0.1", slack_port=port, data_dir=tmp_path)
        async with running_fake_slack() as fake, wire(config, sandbox=True) as app:
            client = slack_client(BOT_TOKEN, base_url=fake.api_url)
            with pytest.raises(SettingUnusable, match=f"SLACK_PORT.*127.0.0.1:{port}") as refused:
                await run_slack(app, client=client)
    assert is_fatal(refused.value)  # the supervisor leaves Slack off and says why, once

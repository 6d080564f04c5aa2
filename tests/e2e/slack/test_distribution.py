"""Distribution ("Add to Slack"): one `samsar-bot run` serves every workspace that installs it.

A real subprocess over the real slack-bolt, against a fake Slack that runs the OAuth flow
(its approval page, `oauth.v2.access` with the client id and secret by HTTP Basic), issues a
different bot token per workspace, answers `auth.test` per token, and refuses a token in
another workspace's channel (`channel_not_found`) or a revoked one (`token_revoked`).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from bots.slack.distribution import DEFAULT_SCOPES
from sandbox.app import running_sandbox
from sandbox.state import SandboxConfig
from storage.slack_sealing import new_key
from tests.e2e.processes import (
    BIN,
    BotProcess,
    Setup,
    bot_process,
    completion_in_flight,
    free_port,
)
from tests.e2e.slack import payloads as sp
from tests.e2e.slack.fake_records import (
    APP_ID,
    BOT_USER,
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_SECRET,
    FakeWorkspace,
)
from tests.e2e.slack.fake_slack import FakeSlack, json_body, post_signed, running_fake_slack
from tests.e2e.test_durable_process import postgres_database
from tests.integration.conftest import needs_postgres

ALICE = sp.ALICE  # the same Slack user id in both workspaces: two different people
ACME = FakeWorkspace("T0ACME", "Acme")
GLOBEX = FakeWorkspace("T0GLOBEX", "Globex")
ORG = FakeWorkspace(None, "Fake Org", enterprise_id="E0ORG", org_install=True)
ORG_TEAM = "T0ORGA"  # a workspace of the org, served by the org-wide installation
CHANNELS = {ACME.team_id: "C0ACME", GLOBEX.team_id: "C0GLOBEX", ORG.enterprise_id: "C0ORGA"}


class Deployment:
    """The fakes, and how to start `samsar-bot run` in distribution mode against them."""

    def __init__(self, setup: Setup, fake: FakeSlack, tmp_path: Path) -> None:
        self.setup = setup
        self.fake = fake
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fake.redirect_url = f"{self.url}/slack/oauth_redirect"
        self._starts = 0

    def env(self, **extra: str) -> dict[str, str]:
        self._starts += 1
        home = self.tmp_path / f"home-{self._starts}"  # an empty $HOME each start
        home.mkdir()
        return {
            "HOME": str(home),
            "SLACK_CLIENT_ID": CLIENT_ID,
            "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.fake.api_url,
            "SLACK_PORT": str(self.port),
            "MEMBER_TURNS_PER_MINUTE": "0",
            **extra,
        }

    async def started(self, bot: BotProcess) -> None:
        await bot.wait_for_log("slack install link")

    async def install(self, workspace: FakeWorkspace) -> httpx.Response:
        """An admin of `workspace` clicks the install link and approves on Slack."""
        self.fake.approver = workspace
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(f"{self.url}/slack/install")
            assert page.status_code == 200, page.text
            link = html.unescape(re.search(r'href="([^"]+/oauth/v2/authorize[^"]*)"', page.text)[1])
            cookie = page.headers["set-cookie"].split(";")[0]
            approved = await http.get(link)
            assert approved.status_code == 302, approved.text
            return await http.get(approved.headers["location"], headers={"Cookie": cookie})

    async def mention(
        self, workspace: FakeWorkspace, text: str, *, user: str = ALICE, to: str | None = None
    ) -> str:
        """`@samsar text` in the workspace's channel, sent as Slack sends it (to the replica
        at `to`, else this deployment's); its ts."""
        at = sp.ts()
        body = event(workspace, mention_event(workspace, text, user, at))
        status, answer = await post_signed(
            f"{to or self.url}/slack/events", json_body(body), content_type="application/json"
        )
        assert status == 200, answer
        return at

    async def send(self, workspace: FakeWorkspace, inner: dict[str, Any]) -> None:
        status, answer = await post_signed(
            f"{self.url}/slack/events",
            json_body(event(workspace, inner)),
            content_type="application/json",
        )
        assert status == 200, answer

    async def answer(self, workspace: FakeWorkspace, at: str, marker: str) -> Any:
        """The answer in the thread of the mention at `at`, once it is there."""
        channel = channel_of(workspace)

        def found() -> Any:
            for message in self.fake.thread(channel, at):
                if marker in message.text and not message.deleted:
                    return message
            return None

        await self.fake.wait_until(found, within=30)
        return found()

    def charged(self, workspace: FakeWorkspace, user: str = ALICE) -> int:
        """Credits charged to the member `user` of `workspace` (a Grid member: of the org)."""
        state = self.setup.sandbox.state
        space = workspace.enterprise_id or workspace.team_id
        return state.charged_total("slack", f"slack:{space}:{user}")

    def posts_with(self, token: str) -> list[Any]:
        return [c for c in self.fake.calls if c.token == token and c.method.startswith("chat.")]


def team_of(workspace: FakeWorkspace) -> str:
    """The workspace events come from (for an org-wide install: one of the org's)."""
    return workspace.team_id or ORG_TEAM


def channel_of(workspace: FakeWorkspace) -> str:
    return CHANNELS[workspace.team_id or workspace.enterprise_id]


def mention_event(workspace: FakeWorkspace, text: str, user: str, at: str) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": at,
        "channel": channel_of(workspace),
        "team": team_of(workspace),
    }


def event(workspace: FakeWorkspace, inner: dict[str, Any]) -> dict[str, Any]:
    """An event_callback envelope from `workspace`, as Slack sends it to this app."""
    body = sp.callback(inner)
    body["team_id"] = team_of(workspace)
    body["api_app_id"] = APP_ID
    grant: dict[str, Any] = {
        "team_id": None if workspace.org_install else workspace.team_id,
        "user_id": BOT_USER,
        "is_bot": True,
        "is_enterprise_install": workspace.org_install,
    }
    if workspace.enterprise_id:
        body["enterprise_id"] = grant["enterprise_id"] = workspace.enterprise_id
    body["authorizations"] = [grant]
    return body


async def deployed(stack: AsyncExitStack, tmp_path: Path, url: str) -> Deployment:
    """The sandbox and the fake Slack (Alice, each workspace's channel) on `stack`, and how to
    start bots on the database at `url`."""
    sandbox = await stack.enter_async_context(running_sandbox(SandboxConfig()))
    fake = await stack.enter_async_context(running_fake_slack())
    fake.add_user(ALICE, "Alice")
    for owner, channel in CHANNELS.items():
        assert owner is not None
        fake.channel_teams[channel] = owner
    return Deployment(Setup(sandbox, url, tmp_path), fake, tmp_path)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with AsyncExitStack() as stack:
        yield await deployed(stack, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")


def installations(tmp_path: Path) -> int:
    """Rows in the installation table of the bot's database."""
    with sqlite3.connect(tmp_path / "bot.db") as db:
        count: int = db.execute("SELECT count(*) FROM slack_installations").fetchone()[0]
        return count


async def test_two_workspaces_install_and_each_is_answered_with_its_own_token(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    async with bot_process(d.setup, tmp_path / "bot.log", d.env()) as bot:
        await d.started(bot)
        for workspace in (ACME, GLOBEX):
            done = await d.install(workspace)
            assert done.status_code == 200 and "slack://app" in done.text, done.text
        acme_token, globex_token = d.fake.token_of("T0ACME"), d.fake.token_of("T0GLOBEX")
        assert acme_token != globex_token
        # The authorize link asked for the manifest's scopes, with our client id.
        [first, _] = d.fake.authorize_requests
        assert first["client_id"] == CLIENT_ID and "app_mentions:read" in first["scope"]

        at_acme = await d.mention(ACME, "hello from acme")
        at_globex = await d.mention(GLOBEX, "hello from globex")
        await d.answer(ACME, at_acme, "hello from acme")
        await d.answer(GLOBEX, at_globex, "hello from globex")
        # Each thread was answered with its own workspace's token, never the other's.
        assert {c.params["channel"] for c in d.posts_with(acme_token)} == {"C0ACME"}
        assert {c.params["channel"] for c in d.posts_with(globex_token)} == {"C0GLOBEX"}
        assert not [c for c in d.fake.calls if c.response.get("error") == "channel_not_found"]
        # Same Slack user id, two workspaces: two Samsar members, each billed for their turn.
        assert d.charged(ACME) == 1 and d.charged(GLOBEX) == 1

    # A new process with an empty $HOME: the installations are in the database.
    async with bot_process(d.setup, tmp_path / "bot2.log", d.env()) as again:
        await d.started(again)
        # Another app's event (its api_app_id is not the one the installations recorded).
        foreign = event(GLOBEX, mention_event(GLOBEX, "not for us", ALICE, sp.ts()))
        foreign["api_app_id"] = "A0OTHERAPP"
        status, _ = await post_signed(
            f"{d.url}/slack/events", json_body(foreign), content_type="application/json"
        )
        assert status == 200
        at = await d.mention(GLOBEX, "still there after a restart?")
        await d.answer(GLOBEX, at, "still there after a restart?")
        assert d.charged(GLOBEX) == 2  # one turn before the restart, one after: not three


async def test_an_uninstalled_workspace_is_no_longer_served_and_can_install_again(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    async with bot_process(d.setup, tmp_path / "bot.log", d.env()) as bot:
        await d.started(bot)
        await d.install(ACME)
        await d.install(GLOBEX)
        old = d.fake.token_of("T0ACME")
        d.fake.revoke("T0ACME")
        await d.send(ACME, {"type": "app_uninstalled"})
        completions = len(d.setup.sandbox.state.calls_to("assistant/completion"))
        calls = len(d.fake.calls)
        await d.mention(ACME, "anyone there?")
        # The other workspace is still served (and proves the first event was handled).
        at = await d.mention(GLOBEX, "globex still served")
        await d.answer(GLOBEX, at, "globex still served")
        assert len(d.setup.sandbox.state.calls_to("assistant/completion")) == completions + 1
        assert not [c for c in d.fake.calls[calls:] if c.token == old]
        assert d.charged(ACME) == 0
        assert "was not found" in bot.log()  # bolt's one line for a workspace not installed

        await d.install(ACME)
        at = await d.mention(ACME, "back again")
        message = await d.answer(ACME, at, "back again")
        new = d.fake.token_of("T0ACME")
        assert new != old and message and d.posts_with(new)
        assert d.charged(ACME) == 1


async def test_bad_installs_store_nothing_and_the_bot_stays_up(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    async with bot_process(d.setup, tmp_path / "bot.log", d.env()) as bot:
        await d.started(bot)
        async with httpx.AsyncClient(timeout=10) as http:
            forged = await http.get(f"{d.url}/slack/oauth_redirect?code=code1&state=forged")
            assert forged.status_code == 400, forged.text
            d.fake.denies = True
            cancelled = await d.install(ACME)
            assert cancelled.status_code == 200 and "access_denied" in cancelled.text
            d.fake.denies = False
        # A code Slack refuses: approve, then let the code be used up before the redirect.
        d.fake.approver = ACME
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(f"{d.url}/slack/install")
            link = html.unescape(re.search(r'href="([^"]+/oauth/v2/authorize[^"]*)"', page.text)[1])
            cookie = page.headers["set-cookie"].split(";")[0]
            approved = await http.get(link)
            d.fake.codes.clear()
            refused = await http.get(approved.headers["location"], headers={"Cookie": cookie})
            assert refused.status_code == 401 and "invalid_code" in refused.text
        assert installations(tmp_path) == 0
        await d.mention(ACME, "not installed")
        # Nothing was stored: the mention reaches no Samsar call; the bot still serves installs.
        await d.install(GLOBEX)
        at = await d.mention(GLOBEX, "fine here")
        await d.answer(GLOBEX, at, "fine here")
        assert installations(tmp_path) == 1
        assert len(d.setup.sandbox.state.calls_to("assistant/completion")) == 1
        assert d.charged(ACME) == 0 and bot.running


def test_a_bot_token_and_a_client_id_together_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "SLACK_BOT_TOKEN": "xoxb-1-secret-token-value",
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    done = subprocess.run(
        [str(BIN), "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "SLACK_BOT_TOKEN" in line and "SLACK_CLIENT_ID" in line and "not both" in line
    assert "secret-token-value" not in done.stderr + done.stdout


def test_the_default_scopes_are_the_manifests() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    block = readme.split("scopes:\n    bot:\n", 1)[1].split("settings:", 1)[0]
    manifest = re.findall(r"^\s+- ([a-z_:.]+)", block, flags=re.MULTILINE)
    assert tuple(manifest) == DEFAULT_SCOPES


async def cli(d: Deployment, *args: str, **env: str) -> tuple[int, str]:
    """`samsar-bot <args>` on the deployment's database; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        str(BIN),
        *args,
        env=d.setup.env() | d.env(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


def stored_bytes(tmp_path: Path) -> bytes:
    """Everything SQLite holds on disk for the bot's database (its WAL too)."""
    return b"".join(path.read_bytes() for path in tmp_path.glob("bot.db*"))


async def test_tokens_are_encrypted_at_rest_and_a_key_rotation_keeps_every_workspace(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    old, new, stranger = new_key(), new_key(), new_key()
    async with bot_process(d.setup, tmp_path / "1.log", d.env(TOKEN_ENCRYPTION_KEY=old)) as bot:
        await d.started(bot)
        await d.install(ACME)
        at = await d.mention(ACME, "sealed acme")
        await d.answer(ACME, at, "sealed acme")
    acme = d.fake.token_of("T0ACME")
    assert acme.encode() not in stored_bytes(tmp_path) and b"xoxb-" not in stored_bytes(tmp_path)

    # The new key first, the old one still there: old and new installations are served.
    both = f"{new},{old}"
    async with bot_process(d.setup, tmp_path / "2.log", d.env(TOKEN_ENCRYPTION_KEY=both)) as bot:
        await d.started(bot)
        await d.install(GLOBEX)
        for workspace in (ACME, GLOBEX):
            at = await d.mention(workspace, f"two keys {workspace.name}")
            await d.answer(workspace, at, f"two keys {workspace.name}")

    code, out = await cli(d, "slack", "rotate-key", TOKEN_ENCRYPTION_KEY=both)
    assert code == 0 and "Re-encrypted" in out, out
    code, out = await cli(d, "slack", "workspaces", TOKEN_ENCRYPTION_KEY=new)
    assert code == 0 and "T0ACME" in out and "T0GLOBEX" in out and "Globex" in out, out
    assert "xox" not in out and "gAAAA" not in out

    # Rotated: the new key alone serves both; a key that opens nothing stops the start.
    async with bot_process(d.setup, tmp_path / "3.log", d.env(TOKEN_ENCRYPTION_KEY=new)) as bot:
        await d.started(bot)
        for workspace in (ACME, GLOBEX):
            at = await d.mention(workspace, f"new key {workspace.name}")
            await d.answer(workspace, at, f"new key {workspace.name}")
    code, out = await cli(d, "run", TOKEN_ENCRYPTION_KEY=stranger)
    assert code == 2 and "Check TOKEN_ENCRYPTION_KEY: it cannot decrypt" in out, out
    assert "Traceback" not in out and stranger not in out and new not in out
    assert d.fake.token_of("T0GLOBEX").encode() not in stored_bytes(tmp_path)


def turn_statuses(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "bot.db") as db:
        return [row[0] for row in db.execute("SELECT status FROM turns ORDER BY created_at")]


async def test_a_turn_in_flight_when_its_workspace_uninstalls_ends_quietly(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    async with bot_process(d.setup, tmp_path / "bot.log", d.env()) as bot:
        await d.started(bot)
        await d.install(ACME)
        old = d.fake.token_of("T0ACME")
        at = await d.mention(ACME, "a slow one #slow=1.5")
        await completion_in_flight(d.setup.sandbox)
        d.fake.revoke("T0ACME")
        await d.send(ACME, {"type": "app_uninstalled"})
        revoked_at = len(d.fake.calls)
        async with asyncio.timeout(30):
            while turn_statuses(tmp_path) != ["failed"]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # Answered by Samsar, but nothing more posted with the dead token, and no retries.
        assert not [c for c in d.fake.calls[revoked_at:] if c.token == old]
        assert not [m for m in d.fake.thread("C0ACME", at) if "a slow one" in m.text]
        assert bot.log().count("delivery failed") == 1 and bot.running


async def test_a_rotating_token_is_refreshed_before_it_posts(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    d.fake.rotating, d.fake.token_lifetime = True, 3600  # within bolt's two hours: refresh
    async with bot_process(d.setup, tmp_path / "bot.log", d.env()) as bot:
        await d.started(bot)
        await d.install(ACME)
        at = await d.mention(ACME, "rotate me")
        # Tokens issued until the event was acknowledged (bolt refreshed one for it).
        known = len(d.fake.issued)
        message = await d.answer(ACME, at, "rotate me")
        posts = [c for c in d.fake.calls if c.method.startswith("chat.") and c.ok]
        assert message and posts
        # The worker refreshed the token itself before posting, not trusting the event's.
        assert {c.token for c in posts} <= set(d.fake.issued[known:])


async def test_an_org_wide_install_serves_every_workspace_of_the_org(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    async with bot_process(d.setup, tmp_path / "bot.log", d.env()) as bot:
        await d.started(bot)
        await d.install(ORG)
        at = await d.mention(ORG, "hello from the org")
        await d.answer(ORG, at, "hello from the org")
        assert d.charged(ORG) == 1  # the member is keyed by the org, not the workspace
        token = d.fake.token_of("E0ORG")
        assert {c.params["channel"] for c in d.posts_with(token)} == {"C0ORGA"}
        code, out = await cli(d, "slack", "workspaces")
        assert code == 0 and "org E0ORG" in out, out


@needs_postgres
async def test_two_replicas_on_postgres_installed_through_one_answered_through_the_other(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database())
        d = await deployed(stack, tmp_path, url)
        other_port = free_port()
        first = await stack.enter_async_context(bot_process(d.setup, tmp_path / "a.log", d.env()))
        await d.started(first)
        second = await stack.enter_async_context(
            bot_process(d.setup, tmp_path / "b.log", d.env(SLACK_PORT=str(other_port)))
        )
        await d.started(second)
        await d.install(ACME)  # through the first
        at = await d.mention(ACME, "answered by the other", to=f"http://127.0.0.1:{other_port}")
        await d.answer(ACME, at, "answered by the other")
        assert d.charged(ACME) == 1
        assert "slack workspace not installed" not in first.log() + second.log()

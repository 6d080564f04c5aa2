"""Which bot token speaks to a workspace: the one SLACK_BOT_TOKEN, or each installation's.

Everything that calls the Web API for a turn (members, files, placeholders, answers, App Home,
hints) belongs to a `Workspace`, built around one token. A turn finds its workspace from the
tenant it stored (team, Grid org, org-wide install) each time it posts, so a worker that
resumes it after a restart, or retries a delivery an hour later, uses the token in force now:
with distribution (`InstalledWorkspaces`) it is looked up in the installation store and
refreshed first when token rotation is on, as bolt does for a request. A workspace that
uninstalled the app has no token: `find` says None and the turn ends without retries.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.files import FileFetcher
from bots.slack.installation import Home, Installation
from bots.slack.members import Members
from bots.slack.render import Renderer
from bots.slack.tenant import Tenant

log = logging.getLogger(__name__)

_KEPT = 1000  # workspaces (clients, member caches) kept at once


@dataclass(frozen=True, slots=True)
class Workspace:
    """The Web API of one workspace, with its token, and what is built on it."""

    client: AsyncWebClient
    installation: Installation
    members: Members
    files: FileFetcher
    renderer: Renderer


class WorkspaceParts(Protocol):
    """Builds a `Workspace` around a client (and what is known of its installation)."""

    def __call__(self, client: AsyncWebClient, home: Home | None) -> Workspace: ...


class Workspaces(Protocol):
    """Finds the workspace that serves a tenant (None: not installed there, or no more)."""

    async def find(self, tenant: Tenant) -> Workspace | None: ...

    async def app_id(self) -> str | None: ...


class OneWorkspace:
    """SLACK_BOT_TOKEN: one workspace (or Grid org) serves every event."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    async def find(self, tenant: Tenant) -> Workspace | None:
        return self._workspace

    async def app_id(self) -> str | None:
        return await self._workspace.installation.app_id()


class InstalledWorkspaces:
    """Distribution: each workspace with the bot token its installation holds in the store."""

    def __init__(
        self,
        store: AsyncInstallationStore,
        client: Callable[[str], AsyncWebClient],
        parts: WorkspaceParts,
        *,
        app_id: Callable[[], Awaitable[str | None]],
        rotator: AsyncTokenRotator | None = None,
        rotate_minutes: int = 120,
    ) -> None:
        self._store = store
        self._client = client
        self._parts = parts
        self._rotator = rotator
        self._rotate_minutes = rotate_minutes
        self._kept: OrderedDict[tuple[Tenant, str], Workspace] = OrderedDict()
        self._recorded_app_id = app_id

    async def find(self, tenant: Tenant) -> Workspace | None:
        bot = await self._store.async_find_bot(
            enterprise_id=tenant.enterprise_id,
            team_id=tenant.team_id,
            is_enterprise_install=tenant.org_install,
        )
        if bot is None or not bot.bot_token:
            return None
        bot = await self._fresh(bot)
        token = str(bot.bot_token)
        key = (tenant, token)
        workspace = self._kept.get(key)
        if workspace is None:
            home = Home(team_id=bot.team_id, enterprise_id=bot.enterprise_id, app_id=bot.app_id)
            workspace = self._parts(self._client(token), home)
            self._kept[key] = workspace
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        self._kept.move_to_end(key)
        return workspace

    async def _fresh(self, bot: Bot) -> Bot:
        """The bot's token refreshed first when it is a rotating one close to expiry."""
        if bot.bot_refresh_token is None or self._rotator is None:
            return bot
        refreshed = await self._rotator.perform_bot_token_rotation(
            bot=bot, minutes_before_expiration=self._rotate_minutes
        )
        if refreshed is None:
            return bot
        await self._store.async_save_bot(refreshed)
        log.info("slack token refreshed", extra={"team": bot.team_id})
        return refreshed

    async def app_id(self) -> str | None:
        """The app's id, as the installations recorded it (one app: one id)."""
        return await self._recorded_app_id()  # the store keeps it once known

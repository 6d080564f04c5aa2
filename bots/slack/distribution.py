"""Distribution: one deployment serves every workspace that installs the app ("Add to Slack").

bolt does the OAuth flow (`/slack/install` → Slack → `/slack/oauth_redirect` →
`oauth.v2.access`) and its authorize step finds each request's token; slack_sdk's SQLAlchemy
stores keep installations and OAuth states in our own database (tables made by our
migrations), so every replica and every restart sees the same installations. The turn worker
finds a workspace's token through the same store when it posts (`InstalledWorkspaces`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from core.settings import DEFAULT_SLACK_API_URL, Settings

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_SECONDS = 600  # an install link works for ten minutes (as the state store keeps it)
ROTATE_MINUTES = 120  # a rotating token is refreshed this long before it expires (bolt's)

# The scopes of the app manifest in the README (a test keeps the two the same).
DEFAULT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "mpim:history",
    "im:history",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "users:read",
    "assistant:write",
)


def authorize_url(api_url: str) -> str:
    """Slack's page where an admin approves the install: beside the Web API's host."""
    if api_url.rstrip("/") + "/" == DEFAULT_SLACK_API_URL:
        return "https://slack.com/oauth/v2/authorize"
    base = api_url.rstrip("/").removesuffix("/api")
    return f"{base}/oauth/v2/authorize"


@dataclass(frozen=True, slots=True)
class Distribution:
    """What bolt and the turn worker need to serve installed workspaces."""

    records: InstallationRecords
    oauth: AsyncOAuthSettings
    authorize: AsyncInstallationStoreAuthorize
    rotator: AsyncTokenRotator
    client_id: str


class InstallationRecords(Protocol):
    """Where installations and OAuth states are kept (the bot's database, see storage)."""

    @property
    def installations(self) -> AsyncInstallationStore: ...

    @property
    def states(self) -> AsyncOAuthStateStore: ...

    async def app_id(self) -> str | None: ...


def distribution(
    settings: Settings, records: InstallationRecords, client: AsyncWebClient
) -> Distribution:
    """bolt's OAuth settings over our stores, and the authorize step (which asks auth.test
    once per token, not once per event)."""
    if settings.slack_client_id is None or settings.slack_client_secret is None:
        raise ValueError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are not set")
    client_id = settings.slack_client_id
    secret = settings.slack_client_secret.get_secret_value()
    logger = logging.getLogger("bots.slack.bolt")
    installations, states = records.installations, records.states
    oauth = AsyncOAuthSettings(
        client_id=client_id,
        client_secret=secret,
        scopes=list(settings.slack_scopes or DEFAULT_SCOPES),
        user_scopes=[],
        redirect_uri=settings.slack_redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=authorize_url(settings.slack_api_url),
        installation_store=installations,
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=ROTATE_MINUTES,
        state_store=states,
        state_expiration_seconds=STATE_SECONDS,
        logger=logger,
    )
    authorize = AsyncInstallationStoreAuthorize(
        logger=logger,
        installation_store=installations,
        client_id=client_id,
        client_secret=secret,
        token_rotation_expiration_minutes=ROTATE_MINUTES,
        bot_only=True,
        cache_enabled=True,
        client=client,
    )
    rotator = AsyncTokenRotator(client_id=client_id, client_secret=secret, client=client)
    return Distribution(records, oauth, authorize, rotator, client_id)

"""How Slack reaches the app: Socket Mode (SLACK_APP_TOKEN) or HTTP (`/slack/events`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bots import health
from bots.bootstrap import App, MissingSettingError, SettingUnusable
from bots.slack.app import SlackBot, SlackOptions
from bots.slack.distribution import INSTALL_PATH
from bots.slack.intake import Intake
from bots.slack.progress import api_error

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
_INTAKE = web.AppKey("intake", Intake)


async def _events(request: web.Request) -> web.Response:
    return await request.app[_INTAKE].http(request)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def http_application(bot: SlackBot) -> web.Application:
    """The aiohttp application: Slack's request URL and a health check; with distribution,
    bolt's install page and OAuth redirect too."""
    application = web.Application()
    application[_INTAKE] = bot.intake
    application.router.add_post(EVENTS_PATH, _events)
    application.router.add_get(HEALTH_PATH, _health)
    flow = bot.app.oauth_flow
    if flow is not None:

        async def install(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await flow.handle_installation(_get(request)))

        async def redirect(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await flow.handle_callback(_get(request)))

        application.router.add_get(flow.install_path, install)
        application.router.add_get(flow.redirect_uri_path, redirect)
    return application


def _get(request: web.Request) -> AsyncBoltRequest:
    """A GET of the OAuth flow as bolt reads it (its query and cookie)."""
    return AsyncBoltRequest(body="", query=request.query_string, headers=dict(request.headers))


@asynccontextmanager
async def serving_http(bot: SlackBot, *, host: str, port: int) -> AsyncIterator[str]:
    """Serve the app over HTTP for the duration of the block; yields the root URL."""
    runner = web.AppRunner(http_application(bot), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # taken, or an address of no interface here: no retry helps
            reason = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
            raise SettingUnusable("SLACK_PORT / SLACK_HOST", reason) from None
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        log.info("slack http listening", extra={"url": url, "path": EVENTS_PATH})
        health.connected("slack", True)
        yield url
    finally:
        health.connected("slack", False)
        await runner.cleanup()


class _SocketModeClient(SocketModeClient):
    """slack-sdk's Socket Mode client, except that an envelope whose payload is no object
    (Slack never sends one) is acknowledged and ignored, where the client would log a
    traceback and leave it unacknowledged for Slack to send again."""

    intake: Intake

    async def run_message_listeners(self, message: dict[str, Any], raw_message: str) -> None:
        """Refuse an unreadable envelope, hand the rest to slack-sdk."""
        payload = message.get("payload")
        if "payload" in message and not isinstance(payload, dict | str):
            await self.intake.unreadable_envelope(self, message.get("envelope_id"))
            return
        await super().run_message_listeners(message, raw_message)


class _SocketModeHandler(AsyncSocketModeHandler):
    """bolt's Socket Mode handler with every envelope passing through the intake first."""

    def __init__(self, bot: SlackBot, app_token: str) -> None:
        # As bolt's own __init__, with the client above (one client, so no stray session).
        self.app = bot.app
        self.app_token = app_token
        self.client = _SocketModeClient(
            app_token=app_token, logger=bot.app.logger, web_client=bot.app.client
        )
        self.client.intake = bot.intake
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]
        self._intake = bot.intake

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Check the envelope, then let bolt run it (or acknowledge it unused)."""
        await self._intake.socket(client, req)


@asynccontextmanager
async def socket_mode(bot: SlackBot, app_token: str) -> AsyncIterator[AsyncSocketModeHandler]:
    """Connected to Slack's Socket Mode (through `apps.connections.open` on the app's client)."""
    handler = _SocketModeHandler(bot, app_token)
    # slack-bolt leaves these two methods unannotated.
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack socket mode connected")
        health.connected("slack", True)
        yield handler
    finally:
        health.connected("slack", False)
        await handler.close_async()  # type: ignore[no-untyped-call]


async def run_slack(
    app: App,
    *,
    client: AsyncWebClient | None = None,
    options: SlackOptions | None = None,
) -> None:
    """Run the Slack bot until cancelled: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on
    SLACK_HOST:SLACK_PORT (needs SLACK_SIGNING_SECRET). Running turns get a short grace at
    shutdown."""
    settings = app.settings
    if settings.slack_bot_token is None and not settings.slack_distributed:
        raise MissingSettingError("SLACK_BOT_TOKEN")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        raise MissingSettingError("SLACK_APP_TOKEN or SLACK_SIGNING_SECRET")
    bot = SlackBot(
        app.service,
        settings,
        client=client,
        options=options or SlackOptions(),
        records=(
            app.store.slack_installations(
                settings.slack_client_id,
                settings.token_encryption_key,
                logger=logging.getLogger("bots.slack.bolt"),
            )
            if settings.slack_client_id is not None
            else None
        ),
    )
    try:
        if settings.slack_app_token is not None and not settings.slack_distributed:
            async with socket_mode(bot, settings.slack_app_token.get_secret_value()):
                await asyncio.Event().wait()
        else:
            async with serving_http(bot, host=settings.slack_host, port=settings.slack_port) as url:
                if bot.distribution is not None:
                    log.info("slack install link", extra={"url": url + INSTALL_PATH})
                await asyncio.Event().wait()
    finally:
        await bot.close()


# Web API errors that say the tokens are wrong: restarting cannot help.
_FATAL_SLACK_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"}
)


def is_fatal(error: BaseException) -> bool:
    """Errors no restart can cure: refused tokens, a missing or unusable setting."""
    if isinstance(error, MissingSettingError | SettingUnusable):
        return True
    return isinstance(error, SlackApiError) and api_error(error) in _FATAL_SLACK_ERRORS

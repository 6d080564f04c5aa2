"""Who the bot is on Slack: the workspace (or Grid org) it is installed in and its app id,
asked once from `auth.test` (and `bots.info` for the app id, which auth.test may leave out)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.progress import WEB_API_ERRORS, error_code

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Home:
    """The team and Enterprise Grid org the bot token belongs to, and the app's id."""

    team_id: str | None
    enterprise_id: str | None
    app_id: str | None


class Installation:
    """Asks Slack once who the bot is (unless the installation store said); while Slack cannot
    say, asks again next time."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        home: Home | None = None,
        retry_every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._retry_every = retry_every
        self._clock = clock
        self._home: Home | None = home  # known already when the installation store holds it
        self._bot_id: str | None = None
        self._next_app_try = 0.0

    async def home(self) -> Home | None:
        """Where the bot is installed; None while Slack cannot say."""
        if self._home is None:
            try:
                response = await self._client.auth_test()
            except WEB_API_ERRORS as exc:
                log.warning("auth.test failed", extra={"error": error_code(exc)})
                return None
            self._bot_id = _text(response.get("bot_id"))
            self._home = Home(
                team_id=_text(response.get("team_id")),
                enterprise_id=_text(response.get("enterprise_id")),
                app_id=_text(response.get("app_id")),
            )
        if self._home.app_id is None and self._clock() >= self._next_app_try:
            # bots.info may be refused (a missing scope): asked again only now and then.
            self._next_app_try = self._clock() + self._retry_every
            app_id = await self._app_of(self._bot_id)
            self._home = dataclasses.replace(self._home, app_id=app_id)
        return self._home

    async def app_id(self) -> str | None:
        """This app's id (`A…`), None while Slack cannot say."""
        home = await self.home()
        return home.app_id if home is not None else None

    async def _app_of(self, bot_id: str | None) -> str | None:
        if bot_id is None:
            return None
        try:
            response = await self._client.bots_info(bot=bot_id)
        except WEB_API_ERRORS as exc:
            log.warning("bots.info failed", extra={"error": error_code(exc)})
            return None
        bot = response.get("bot")
        return _text(bot.get("app_id")) if isinstance(bot, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

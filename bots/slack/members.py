"""Who a Slack member is: `users.info` (cached) turned into a core `ChatUser`.

Slack's admin flags are trusted only for members of the workspace (or Enterprise Grid org)
that installed the bot: in a Slack Connect channel, another company's admin is a plain member.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.progress import WEB_API_ERRORS, error_code
from core.models import ChatUser

log = logging.getLogger(__name__)


class Members:
    """Looks members up once per `ttl` seconds; admins/owners per Slack are core admins."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 600.0,
        size: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, ChatUser]] = OrderedDict()
        self._home: tuple[str | None, str | None] | None = None  # (team, enterprise) installed in

    async def chat_user(self, team_id: str, user_id: str, enterprise_id: str | None) -> ChatUser:
        """The member with their names and admin flag; a plain member when Slack cannot say."""
        key = (enterprise_id or team_id, user_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            self._cache.move_to_end(key)
            return cached[1]
        plain = ChatUser("slack", user_id, workspace_id=team_id, enterprise_id=enterprise_id)
        try:
            response = await self._client.users_info(user=user_id)
        except WEB_API_ERRORS as exc:
            # Not cached: the next message asks again. Admin rights are not assumed.
            log.warning(
                "users.info failed",
                extra={"slack_user": user_id, "team": team_id, "error": error_code(exc)},
            )
            return plain
        info = response.get("user") or {}
        home = await self._installed_in()
        user = _to_chat_user(info, plain, trusted=home is not None and _belongs_to(info, *home))
        if home is None:
            return user  # not cached: admin rights are looked at again once auth.test answers
        self._cache[key] = (self._clock() + self._ttl, user)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return user

    async def _installed_in(self) -> tuple[str | None, str | None] | None:
        """The (team, enterprise) the bot is installed in, from `auth.test` once; None while
        Slack cannot say (nobody is trusted as an admin meanwhile)."""
        if self._home is None:
            try:
                response = await self._client.auth_test()
            except WEB_API_ERRORS as exc:
                log.warning("auth.test failed", extra={"error": error_code(exc)})
                return None
            self._home = (response.get("team_id") or None, response.get("enterprise_id") or None)
        return self._home


def _belongs_to(info: dict[str, Any], team: str | None, enterprise: str | None) -> bool:
    """Whether the users.info member is of the installing workspace, or of its Grid org."""
    if team is not None and info.get("team_id") == team:
        return True
    grid = info.get("enterprise_user") or {}
    theirs = info.get("enterprise_id") or grid.get("enterprise_id")
    return enterprise is not None and theirs == enterprise


def _to_chat_user(info: dict[str, Any], plain: ChatUser, *, trusted: bool) -> ChatUser:
    """`plain` with the names from users.info; Slack's admin flags count only when `trusted`."""
    profile = info.get("profile") or {}
    flags = ("is_admin", "is_owner", "is_primary_owner")
    is_admin = trusted and any(bool(info.get(flag)) for flag in flags)
    display = profile.get("display_name") or profile.get("real_name") or info.get("real_name")
    return dataclasses.replace(
        plain,
        username=info.get("name") or None,
        display_name=display or None,
        avatar_url=profile.get("image_192") or None,
        is_admin=is_admin,
    )

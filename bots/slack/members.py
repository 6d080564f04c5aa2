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

from bots.member_fields import bounded_name, bounded_url
from bots.slack.installation import Installation
from bots.slack.progress import WEB_API_ERRORS, error_code
from core.models import ChatUser

log = logging.getLogger(__name__)


class Members:
    """Looks members up once per `ttl` seconds; admins/owners per Slack are core admins."""

    def __init__(
        self,
        client: AsyncWebClient,
        installation: Installation,
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
        self._installation = installation

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
        info = _object(response.get("user"))
        home = await self._installation.home()
        trusted = home is not None and _belongs_to(info, home.team_id, home.enterprise_id)
        user = _to_chat_user(info, plain, trusted=trusted)
        if home is None:
            return user  # not cached: admin rights are looked at again once auth.test answers
        self._cache[key] = (self._clock() + self._ttl, user)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return user


def _belongs_to(info: dict[str, Any], team: str | None, enterprise: str | None) -> bool:
    """Whether the users.info member is of the installing workspace, or of its Grid org."""
    if team is not None and info.get("team_id") == team:
        return True
    grid = _object(info.get("enterprise_user"))
    theirs = info.get("enterprise_id") or grid.get("enterprise_id")
    return enterprise is not None and theirs == enterprise


def _to_chat_user(info: dict[str, Any], plain: ChatUser, *, trusted: bool) -> ChatUser:
    """`plain` with the names from users.info (bounded, whatever Slack sent); Slack's admin
    flags count only when `trusted`."""
    profile = _object(info.get("profile"))
    flags = ("is_admin", "is_owner", "is_primary_owner")
    is_admin = trusted and any(info.get(flag) is True for flag in flags)
    names = (profile.get("display_name"), profile.get("real_name"), info.get("real_name"))
    return dataclasses.replace(
        plain,
        username=bounded_name(info.get("name")),
        display_name=next((name for n in names if (name := bounded_name(n))), None),
        avatar_url=bounded_url(profile.get("image_192")),
        is_admin=is_admin,
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}

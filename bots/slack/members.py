"""Who a Slack member is: `users.info` (cached) turned into a core `ChatUser`."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

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

    async def chat_user(self, team_id: str, user_id: str, enterprise_id: str | None) -> ChatUser:
        """The member with their names and admin flag; a plain member when Slack cannot say."""
        key = (enterprise_id or team_id, user_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            self._cache.move_to_end(key)
            return cached[1]
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            # Not cached: the next message asks again. Admin rights are not assumed.
            log.warning(
                "users.info failed",
                extra={"slack_user": user_id, "team": team_id, "error": exc.response.get("error")},
            )
            return ChatUser("slack", user_id, workspace_id=team_id, enterprise_id=enterprise_id)
        user = _to_chat_user(response.get("user") or {}, team_id, user_id, enterprise_id)
        self._cache[key] = (self._clock() + self._ttl, user)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return user


def _to_chat_user(
    info: dict[str, Any], team_id: str, user_id: str, enterprise_id: str | None
) -> ChatUser:
    profile = info.get("profile") or {}
    is_admin = any(bool(info.get(flag)) for flag in ("is_admin", "is_owner", "is_primary_owner"))
    display = profile.get("display_name") or profile.get("real_name") or info.get("real_name")
    return ChatUser(
        platform="slack",
        user_id=user_id,
        workspace_id=team_id,
        enterprise_id=enterprise_id,
        username=info.get("name") or None,
        display_name=display or None,
        avatar_url=profile.get("image_192") or None,
        is_admin=is_admin,
    )

"""Members: a chat user's Samsar external user, bootstrapped lazily and only once."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from core.conversation.locks import KeyedLocks
from core.errors import NotFound
from core.identity import identity_for, stable_key
from core.models import ChatUser, ExternalIdentity, StoredUser
from core.ports import SamsarPort, UserRepository

log = logging.getLogger(__name__)

T = TypeVar("T")

BOOTSTRAPPED_CACHE = 100_000


class Members:
    """Resolves chat users to external users, calling `external_users/session` once each."""

    def __init__(self, samsar: SamsarPort, users: UserRepository) -> None:
        self._samsar = samsar
        self._users = users
        self._locks = KeyedLocks()
        # Users known to be bootstrapped: a fact that never becomes false, so it can be cached
        # (bounded: the oldest fall back to one database read).
        self._bootstrapped: OrderedDict[str, None] = OrderedDict()

    async def ensure(self, user: ChatUser, *, refresh: str | None = None) -> ExternalIdentity:
        """The user's external identity, bootstrapped on Samsar on first use.

        `refresh` (a turn id) bootstraps again even if it was done before: Samsar lost the user.
        """
        identity = identity_for(user)
        if refresh is None and user.key in self._bootstrapped:
            return identity
        async with self._locks.hold(user.key):
            stored = await self._users.get(user.key)
            if refresh is None and stored is not None and stored.bootstrapped_at is not None:
                self._remember(user.key)
                return identity
            # The key follows the body: a renamed member's retry is a new request, not a
            # replay of a different one (which Samsar would refuse).
            key = stable_key("bootstrap", repr(identity), refresh or "")
            await self._samsar.bootstrap_user(identity, idempotency_key=key)
            await self._users.save(
                StoredUser(
                    user_key=user.key,
                    platform=user.platform,
                    provider=identity.provider,
                    external_user_id=identity.external_user_id,
                    workspace_id=user.workspace_id,
                    display_name=user.label,
                    bootstrapped_at=datetime.now(UTC),
                    persona=stored.persona if stored else None,
                )
            )
            self._remember(user.key)
            log.info("external user bootstrapped", extra={"user": user.key})
        return identity

    async def on_behalf(
        self,
        user: ChatUser,
        call: Callable[[ExternalIdentity, str], Awaitable[T]],
        key: str,
    ) -> T:
        """`call(identity, idempotency key)` for the member. When Samsar no longer knows them
        (a 404: a fresh sandbox, another account), they are bootstrapped again, persona and
        all, and the call is made once more under a key of its own (a 404 charged nothing)."""
        identity = await self.ensure(user)
        try:
            return await call(identity, key)
        except NotFound:
            log.warning("samsar lost the member; bootstrapping again", extra={"user": user.key})
            await self.ensure(user, refresh=key)
            return await call(identity, stable_key("again", key))

    def _remember(self, user_key: str) -> None:
        self._bootstrapped[user_key] = None
        self._bootstrapped.move_to_end(user_key)
        if len(self._bootstrapped) > BOOTSTRAPPED_CACHE:
            self._bootstrapped.popitem(last=False)

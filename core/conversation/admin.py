"""Admin use cases: workspace and channel prompts, the account prompt, credit grants, audit."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

from core.conversation.members import Members
from core.conversation.prompts import EffectivePrompt, effective_prompt
from core.errors import InputRejected, NotAdmin
from core.identity import stable_key
from core.models import AdminPrompt, AuditEntry, Balance, ChatUser, PromptScope, ThreadRef
from core.ports import SamsarPort, Store

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 4000


class AdminActions:
    """What admins may do; every action is checked here again and written to the audit log."""

    def __init__(
        self, samsar: SamsarPort, store: Store, members: Members, admin_keys: Collection[str] = ()
    ) -> None:
        self._samsar = samsar
        self._store = store
        self._members = members
        self._admin_keys = frozenset(admin_keys)

    def is_admin(self, user: ChatUser) -> bool:
        """The adapter's verdict, or the operator's list of admin user keys."""
        return user.is_admin or user.key in self._admin_keys

    def _require_admin(self, user: ChatUser) -> None:
        if not self.is_admin(user):
            log.warning("admin action refused", extra={"user": user.key})
            raise NotAdmin()

    async def prompt_set(
        self, user: ChatUser, thread: ThreadRef, scope: PromptScope, text: str
    ) -> AdminPrompt:
        """Set the workspace's or the thread's channel's admin prompt."""
        self._require_admin(user)
        text = text.strip()
        if not text:
            raise InputRejected(InputRejected.EMPTY)
        if len(text) > MAX_PROMPT_CHARS:
            raise InputRejected(InputRejected.TOO_LONG, limit=MAX_PROMPT_CHARS)
        prompt = AdminPrompt(
            platform=thread.platform,
            workspace_id=thread.workspace_id,
            channel_id=_channel(thread, scope),
            text=text,
            updated_by=user.key,
            updated_at=datetime.now(UTC),
        )
        await self._store.prompts.set(prompt)
        await self._audit(user, "prompt.set", thread, scope, text)
        return prompt

    async def prompt_clear(self, user: ChatUser, thread: ThreadRef, scope: PromptScope) -> bool:
        """Remove the workspace's or channel's admin prompt; True when there was one."""
        self._require_admin(user)
        removed = await self._store.prompts.clear(
            thread.platform, thread.workspace_id, _channel(thread, scope)
        )
        await self._audit(user, "prompt.clear", thread, scope, "removed" if removed else "none")
        return removed

    async def prompt_show(
        self, user: ChatUser, thread: ThreadRef, scope: PromptScope | None = None
    ) -> AdminPrompt | EffectivePrompt | None:
        """One scope's prompt, or (scope None) the composed prompt in force for the thread."""
        self._require_admin(user)
        if scope is None:
            return await effective_prompt(self._store.prompts, thread)
        return await self._store.prompts.get(
            thread.platform, thread.workspace_id, _channel(thread, scope)
        )

    async def account_prompt_set(self, actor: str, text: str | None, *, event_key: str) -> None:
        """Set (None: clear) the Samsar account-level prompt; operator only (the CLI)."""
        text = (text or "").strip() or None
        await self._samsar.set_account_prompt(
            text, idempotency_key=stable_key("account-prompt", event_key)
        )
        await self._store.audit.record(
            AuditEntry(
                actor_key=actor,
                action="account_prompt.set" if text else "account_prompt.clear",
                platform="cli",
                workspace_id="",
                channel_id="",
                detail=text or "",
                created_at=datetime.now(UTC),
            )
        )

    async def grant(
        self, actor: ChatUser, member: ChatUser, credits: int, *, event_key: str
    ) -> Balance:
        """Grant credits to a member (admins only)."""
        self._require_admin(actor)
        if credits <= 0:
            raise InputRejected(InputRejected.BAD_VALUE, detail="credits must be positive")
        identity = await self._members.ensure(member)
        balance = await self._samsar.grant_credits(
            identity, credits, idempotency_key=stable_key("grant", event_key)
        )
        await self._store.audit.record(
            AuditEntry(
                actor_key=actor.key,
                action="credits.grant",
                platform=member.platform,
                workspace_id=member.workspace_id or "",
                channel_id="",
                detail=f"{credits} to {member.key}",
                created_at=datetime.now(UTC),
            )
        )
        return balance

    async def _audit(
        self, user: ChatUser, action: str, thread: ThreadRef, scope: PromptScope, detail: str
    ) -> None:
        await self._store.audit.record(
            AuditEntry(
                actor_key=user.key,
                action=action,
                platform=thread.platform,
                workspace_id=thread.workspace_id,
                channel_id=_channel(thread, scope),
                detail=detail,
                created_at=datetime.now(UTC),
            )
        )
        log.info("admin action", extra={"user": user.key, "action": action, "scope": scope.value})


def _channel(thread: ThreadRef, scope: PromptScope) -> str:
    return thread.channel_id if scope is PromptScope.CHANNEL else ""

"""How a chat user maps to a Samsar external user, and stable keys derived from ids."""

from __future__ import annotations

import uuid

from core.models import ChatUser, ExternalIdentity

_NAMESPACE = uuid.UUID("5b0c7f0e-6a51-4d0e-9a8e-2f4b8f6c1d10")


def identity_for(user: ChatUser) -> ExternalIdentity:
    """The external user of a chat user (DESIGN decision 1).

    `external_user_id` is the user key, unique per person per identity space; Slack members
    also carry their team (or Enterprise Grid org) as `external_company_id`. Discord ids are
    global, so a Discord member is one external user whichever server they write in.
    """
    company = (user.enterprise_id or user.workspace_id) if user.platform == "slack" else None
    return ExternalIdentity(
        provider=user.platform,
        external_user_id=user.key,
        external_company_id=company,
        username=user.username,
        display_name=user.display_name,
        avatar_url=user.avatar_url,
    )


def stable_key(purpose: str, *parts: str) -> str:
    """A deterministic idempotency key for one logical call (same inputs, same key)."""
    return f"{purpose}-{uuid.uuid5(_NAMESPACE, '|'.join((purpose, *parts))).hex}"

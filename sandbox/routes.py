"""Sandbox handlers for external users, credits, login tokens and system prompts."""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sandbox.state import ApiError, ExternalUser, SandboxState, UserKey, new_id, now_iso

MAX_PROMPT_CHARS = 20_000
MAX_CREDITS_PER_CALL = 1_000_000
_STRING_FIELDS: dict[str, tuple[str, ...]] = {
    "unique_key": ("unique_key", "uniqueKey"),
    "external_app_id": ("external_app_id", "externalAppId"),
    "external_company_id": ("external_company_id", "externalCompanyId"),
    "external_account_id": ("external_account_id", "externalAccountId"),
    "email": ("email",),
    "username": ("username",),
    "display_name": ("display_name", "displayName"),
    "avatar_url": ("avatar_url", "avatarUrl"),
    "user_type": ("user_type", "userType"),
}


@dataclass
class Call:
    """One request as a handler sees it; handlers set `user_key` and `charged`."""

    state: SandboxState
    body: dict[str, Any]
    query: Mapping[str, str]
    origin: str
    user_key: UserKey | None = None
    charged: int = 0


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def _trimmed(value: object) -> str | None:
    """A non-empty trimmed string, else None (like the client's getTrimmedString)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_identity(raw: object) -> tuple[UserKey, dict[str, Any]]:
    """Validate an external user like normalizeExternalUserIdentity: key and profile fields."""
    if not isinstance(raw, Mapping):
        raise ApiError(
            400, "external_user is required: an object with provider and external_user_id"
        )
    provider = _trimmed(raw.get("provider"))
    unique_key = _trimmed(raw.get("unique_key")) or _trimmed(raw.get("uniqueKey"))
    external_id = (
        _trimmed(raw.get("external_user_id")) or _trimmed(raw.get("externalUserId")) or unique_key
    )
    if provider is None or external_id is None:
        raise ApiError(
            400,
            "externalUser.provider and externalUser.external_user_id or "
            "externalUser.unique_key are required",
        )
    profile: dict[str, Any] = {}
    for name, aliases in _STRING_FIELDS.items():
        for alias in aliases:
            value = raw.get(alias)
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"external_user.{alias} must be a string")
            if value:
                profile[name] = value
                break
    if isinstance(raw.get("metadata"), Mapping):
        profile["metadata"] = dict(raw["metadata"])
    return (provider, external_id), profile


def require_user(call: Call, raw: object = None) -> ExternalUser:
    """The bootstrapped user named by the body's `external_user` (or `raw`), else 404."""
    key, _ = parse_identity(call.body.get("external_user") if raw is None else raw)
    call.user_key = key
    user = call.state.users.get(key)
    if user is None:
        raise ApiError(404, "external user not found: create an external user session first")
    return user


def _prompt_value(body: Mapping[str, Any]) -> str | None:
    """The system prompt from the body (None clears it); 400 when absent or not a string."""
    for name in ("system_prompt", "systemPrompt", "prompt", "value"):
        if name in body:
            value = body[name]
            if value is None:
                return None
            if not isinstance(value, str):
                raise ApiError(400, f"{name} must be a string or null")
            if len(value) > MAX_PROMPT_CHARS:
                raise ApiError(400, f"{name} is longer than {MAX_PROMPT_CHARS} characters")
            return value if value.strip() else None
    raise ApiError(400, 'system_prompt is required (null or "" clears it)')


def _credits(body: Mapping[str, Any]) -> int:
    """`input.credits` as a positive integer (rounded like Math.round), else 400."""
    payload = body.get("input")
    value = payload.get("credits") if isinstance(payload, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, "input.credits must be a positive number")
    credits = math.floor(value + 0.5)
    if not 1 <= credits <= MAX_CREDITS_PER_CALL:
        raise ApiError(400, f"input.credits must be between 1 and {MAX_CREDITS_PER_CALL}")
    return credits


async def external_session(call: Call) -> dict[str, Any]:
    """POST external_users/session: create or refresh the user."""
    key, profile = parse_identity(call.body.get("external_user"))
    call.user_key = key
    user = call.state.upsert_user(key, profile)
    return {
        "remainingCredits": user.credits,
        "lastTopUp": None,
        "external_api_key": user.external_api_key,
        "external_user": user.summary(),
    }


async def assistant_session(call: Call) -> dict[str, Any]:
    """POST external_users/utils/assistant_session: a new empty session for the user."""
    user = require_user(call)
    name = call.body.get("session_name")
    if name is not None and not isinstance(name, str):
        raise ApiError(400, "session_name must be a string")
    session = call.state.new_session(user.key, name)
    return {
        "session_id": session.session_id,
        "request_id": session.session_id,
        "session_type": "assistant",
        "session_name": name,
        "external_user": user.summary(),
        "created_at": session.created_at,
        "updated_at": session.created_at,
    }


async def external_system_prompt(call: Call) -> dict[str, Any]:
    """POST external_users/assistant/set_system_prompt: set or clear the user's prompt."""
    user = require_user(call)
    user.system_prompt = _prompt_value(call.body)
    user.updated_at = now_iso()
    return {"system_prompt": user.system_prompt, "external_user": user.summary()}


async def account_system_prompt(call: Call) -> dict[str, Any]:
    """POST assistant/set_system_prompt: set or clear the account prompt."""
    call.state.account_prompt = _prompt_value(call.body)
    return {"system_prompt": call.state.account_prompt, "model": "sandbox-assistant"}


async def credits_balance(call: Call) -> dict[str, Any]:
    """GET external_users/credits?provider=…&external_user_id=…: the user's balance."""
    user = require_user(call, dict(call.query))
    return {"remainingCredits": user.credits, "lastTopUp": None, "external_user": user.summary()}


async def credits_recharge(call: Call) -> dict[str, Any]:
    """POST external_users/credits/recharge: a checkout link (credits arrive once paid)."""
    user = require_user(call)
    credits = _credits(call.body)
    checkout = call.state.new_checkout(user.key, credits)
    return {
        "url": f"{call.origin}/checkout/{checkout.checkout_id}",
        "checkoutSessionId": checkout.checkout_id,
        "paymentIntentId": None,
        "credits": credits,
        "amountUsd": credits / 100,
        "amountCents": credits,
        "currency": "usd",
        "external_payment_id": new_id("extpay"),
        "external_user": user.summary(),
    }


async def credits_grant(call: Call) -> dict[str, Any]:
    """POST external_users/credits/grant: add credits to the user now."""
    user = require_user(call)
    credits = _credits(call.body)
    user.credits += credits
    user.total_credits_purchased += credits
    return {
        "creditsGranted": credits,
        "remainingCredits": user.credits,
        "internalRemainingCredits": None,
        "external_user": user.summary(),
    }


async def login_token(call: Call) -> dict[str, Any]:
    """POST external_users/create_login_token: a short-lived token and login URL."""
    user = require_user(call)
    redirect = call.body.get("redirect")
    if redirect is not None and not isinstance(redirect, str):
        raise ApiError(400, "redirect must be a string")
    token = f"lt_{secrets.token_urlsafe(18)}"
    query = {"token": token, **({"redirect": redirect} if redirect else {})}
    expires = datetime.now(UTC) + timedelta(seconds=600)
    return {
        "loginToken": token,
        "expiresInSeconds": 600,
        "expiresAt": expires.isoformat().replace("+00:00", "Z"),
        "loginUrl": f"{call.origin}/login?{urlencode(query)}",
        "external_user": user.summary(),
    }

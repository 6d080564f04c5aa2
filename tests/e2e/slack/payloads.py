"""Raw Slack payloads as the Events API and slash commands deliver them."""

from __future__ import annotations

import itertools
from typing import Any

from tests.e2e.slack.fake_records import APP_ID, BOT_USER, TEAM

CHANNEL = "C0GENERAL"
DM = "D0ALICE"
ALICE, BOB, ADA = "U0ALICE", "U0BOB", "U0ADA"

_ids = itertools.count(1)


def ts() -> str:
    """A fresh member message timestamp."""
    n = next(_ids)
    return f"1690000000.{n:06d}"


def callback(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An `event_callback` envelope around `event`."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": 1690000000,
        "authorizations": [
            {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}
        ],
    }


def mention(
    text: str, *, user: str = ALICE, at: str | None = None, thread_ts: str | None = None
) -> dict[str, Any]:
    """`@samsar text` in the general channel (an `app_mention` event)."""
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": at or ts(),
        "channel": CHANNEL,
        "team": TEAM,
        "client_msg_id": f"cm-{next(_ids)}",
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return callback(event)


def message(
    text: str,
    *,
    user: str = ALICE,
    channel: str = CHANNEL,
    thread_ts: str | None = None,
    at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A `message` event (channel_type follows the channel id)."""
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": at or ts(),
        "channel": channel,
        "channel_type": "im" if channel.startswith("D") else "channel",
        "team": TEAM,
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return callback(event)


def command(
    text: str, response_url: str, *, user: str = ALICE, channel: str = CHANNEL
) -> dict[str, str]:
    """A `/samsar` invocation, as the form fields Slack posts."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/samsar",
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"trig.{next(_ids)}",
    }

"""Admin prompt layering: which developer message a session needs, and when to send it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.models import AdminPrompt, ThreadRef
from core.ports import PromptRepository

CLEARED_NOTICE = (
    "The earlier instructions from this workspace's admins no longer apply. "
    "Follow only your own system prompt from now on."
)


@dataclass(frozen=True, slots=True)
class EffectivePrompt:
    """The admin instructions in force for a thread; `fingerprint` is None when there are none."""

    text: str | None
    fingerprint: str | None


def compose(workspace: AdminPrompt | None, channel: AdminPrompt | None) -> EffectivePrompt:
    """Workspace instructions first, then the channel's, as one developer message."""
    parts: list[str] = []
    if workspace is not None:
        parts.append(f"Instructions from the admins of this workspace:\n{workspace.text}")
    if channel is not None:
        parts.append(f"Instructions from the admins for this channel:\n{channel.text}")
    if not parts:
        return EffectivePrompt(text=None, fingerprint=None)
    text = "\n\n".join(parts)
    return EffectivePrompt(text=text, fingerprint=hashlib.sha256(text.encode()).hexdigest()[:32])


async def effective_prompt(prompts: PromptRepository, thread: ThreadRef) -> EffectivePrompt:
    """The composed admin prompt of a thread's workspace and channel."""
    workspace, channel = await prompts.in_force(
        thread.platform, thread.workspace_id, thread.channel_id
    )
    return compose(workspace, channel)


def developer_message(effective: EffectivePrompt, last_sent: str | None) -> str | None:
    """The developer message to send now: only when the effective prompt changed since last sent.

    A new session has `last_sent` None, so it gets the prompt when there is one; a prompt that
    was cleared after being sent gets a short notice that it no longer applies.
    """
    if effective.fingerprint == last_sent:
        return None
    if effective.text is None:
        return CLEARED_NOTICE
    return effective.text

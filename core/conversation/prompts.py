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
REPLACED_NOTICE = (
    "The earlier instructions from this workspace's admins no longer apply; "
    "these replace them entirely:"
)


@dataclass(frozen=True, slots=True)
class EffectivePrompt:
    """The admin instructions in force for a thread; `fingerprint` is None when there are none."""

    text: str | None
    fingerprint: str | None


PERSONA_HEADING = (
    "This member's own preferences (follow them only where they agree with everything above; "
    "they never replace it):"
)


def compose(
    workspace: AdminPrompt | None, channel: AdminPrompt | None, persona: str | None = None
) -> EffectivePrompt:
    """Workspace instructions first, then the channel's, then the member's persona below them,
    as one developer message. The persona travels here, not as the member's Samsar system
    prompt, which would replace the operator's account prompt: so the operator's prompt stays
    in force, the admins' instructions come first, and what a member wrote never outranks
    them."""
    parts: list[str] = []
    if workspace is not None:
        parts.append(f"Instructions from the admins of this workspace:\n{workspace.text}")
    if channel is not None:
        parts.append(f"Instructions from the admins for this channel:\n{channel.text}")
    if persona:
        parts.append(f"{PERSONA_HEADING}\n{persona}")
    if not parts:
        return EffectivePrompt(text=None, fingerprint=None)
    text = "\n\n".join(parts)
    return EffectivePrompt(text=text, fingerprint=hashlib.sha256(text.encode()).hexdigest()[:32])


async def effective_prompt(
    prompts: PromptRepository, thread: ThreadRef, member_key: str | None = None
) -> EffectivePrompt:
    """The composed admin prompt of a thread's workspace and channel (and, for a member's
    turn, their persona)."""
    workspace, channel, persona = await prompts.in_force(
        thread.platform, thread.workspace_id, thread.channel_id, member_key
    )
    return compose(workspace, channel, persona)


def developer_message(effective: EffectivePrompt, last_sent: str | None) -> str | None:
    """The developer message to send now: only when the effective prompt changed since last sent.

    A new session has `last_sent` None, so it gets the prompt when there is one; a prompt that
    was cleared after being sent gets a short notice that it no longer applies, and one that
    changed says it replaces the earlier instructions (which the session still holds).
    """
    if effective.fingerprint == last_sent:
        return None
    if effective.text is None:
        return CLEARED_NOTICE
    if last_sent is not None:  # changed: the session still holds the earlier ones
        return f"{REPLACED_NOTICE}\n\n{effective.text}"
    return effective.text

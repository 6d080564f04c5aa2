"""Block Kit buttons: under pictures (Regenerate, Edit…, HD, another size), under failures
(Try again, Buy credits), 👍/👎 under answers in assistant threads, and the edit form.

Each action id names the action, its value the turn it acts on, so a click works the same
after a restart or on another replica: nothing about it is kept in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import RETRYABLE, BotError, InsufficientCredits
from core.models import Redo

Block = dict[str, Any]

ACTION = re.compile(r"^samsar_(regen|hd|edit|size|retry)$")
FEEDBACK = re.compile(r"^samsar_feedback_(up|down)$")
BUY = "samsar_buy"  # a link button: Slack still sends its click, which needs only an ack
EDIT_FORM = "samsar_edit_form"  # the form's callback id
INSTRUCTION_BLOCK, INSTRUCTION = "instruction", "instruction_input"
SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
_TURN = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class Clicked:
    """A click of ours: the redo it asks for, the turn, and a size for the size select."""

    redo: Redo
    turn_id: str
    size: str | None = None


def clicked(action: dict[str, Any]) -> Clicked | None:
    """The click an action of a `block_actions` payload names; None for anything else."""
    match = ACTION.match(str(action.get("action_id") or ""))
    if match is None:
        return None
    redo = Redo(match[1])
    if redo is Redo.SIZE:
        selected = action.get("selected_option")
        value = str(selected.get("value") or "") if isinstance(selected, dict) else ""
        turn_id, _, size = value.partition("|")
        if size not in SIZES:
            return None
    else:
        turn_id, size = str(action.get("value") or ""), None
    return Clicked(redo, turn_id, size) if _TURN.match(turn_id) else None


def _button(text: str, action: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _actions(kind: str, turn_id: str, elements: list[Block]) -> Block:
    """An actions block of ours, named after its kind and its turn."""
    return {"type": "actions", "block_id": f"samsar_{kind}_{turn_id}", "elements": elements}


def picture_actions(turn_id: str) -> Block:
    """What a member does next with a picture."""
    return _actions(
        "picture",
        turn_id,
        [
            _button("🔁 Regenerate", "samsar_regen", turn_id),
            _button("✏️ Edit…", "samsar_edit", turn_id),
            _button("HD", "samsar_hd", turn_id),
            {
                "type": "static_select",
                "action_id": "samsar_size",
                "placeholder": {"type": "plain_text", "text": "Another size…"},
                "options": [
                    {"text": {"type": "plain_text", "text": size}, "value": f"{turn_id}|{size}"}
                    for size in SIZES
                ],
            },
        ],
    )


def failure_actions(turn_id: str, error: BotError) -> Block | None:
    """Try again under a failure Samsar may get over; Buy credits under out-of-credits."""
    if isinstance(error, RETRYABLE):
        button = _button("🔁 Try again", "samsar_retry", turn_id, style="primary")
    elif isinstance(error, InsufficientCredits) and error.checkout_url:
        button = _button("💳 Buy credits", BUY, turn_id, style="primary")
        button["url"] = error.checkout_url
    else:
        return None
    return _actions("failure", turn_id, [button])


def feedback_actions(turn_id: str) -> Block:
    """👍/👎 under an answer in an assistant thread."""
    return _actions(
        "feedback",
        turn_id,
        [
            _button("👍", "samsar_feedback_up", turn_id),
            _button("👎", "samsar_feedback_down", turn_id),
        ],
    )


def edit_form(turn_id: str, channel: str, thread_ts: str) -> dict[str, Any]:
    """The modal asking what to change; the turn and thread ride in its metadata."""
    return {
        "type": "modal",
        "callback_id": EDIT_FORM,
        "private_metadata": f"{turn_id}|{channel}|{thread_ts}",
        "title": {"type": "plain_text", "text": "Edit this picture"},
        "submit": {"type": "plain_text", "text": "Edit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": INSTRUCTION_BLOCK,
                "label": {"type": "plain_text", "text": "What should change?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": INSTRUCTION,
                    "max_length": 1000,
                    "placeholder": {"type": "plain_text", "text": "make it night, add a red hat…"},
                },
            }
        ],
    }


def form_values(view: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(turn id, channel, thread ts, instruction) of a submitted edit form."""
    turn_id, _, rest = str(view.get("private_metadata") or "").partition("|")
    channel, _, thread_ts = rest.partition("|")
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(INSTRUCTION_BLOCK) if isinstance(values, dict) else None
    field = block.get(INSTRUCTION) if isinstance(block, dict) else None
    text = field.get("value") if isinstance(field, dict) else None
    if not _TURN.match(turn_id) or not channel or not thread_ts or not isinstance(text, str):
        return None
    return turn_id, channel, thread_ts, text.strip()

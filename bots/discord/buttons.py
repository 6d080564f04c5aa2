"""The buttons under a picture (Regenerate, Edit…, HD, another size) and under a failure (Try
again, Buy credits), and the edit form.

Each custom id names the action and the turn it acts on (`samsar:regen:<turn id>`), so a click
works the same after a restart or on another replica: nothing about it is kept in memory.
The views are sent finished (`stop()`), so discord.py keeps no per-message state for them;
the buttons cog answers every click from its custom id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from core.errors import RETRYABLE, BotError, InsufficientCredits
from core.models import Redo

PREFIX = "samsar"
_CUSTOM_ID = re.compile(rf"^{PREFIX}:(regen|hd|edit|size|retry|editform):([0-9a-f]{{32}})$")
EDIT_FORM = "editform"
INSTRUCTION = "instruction"  # the edit form's text input
SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")


@dataclass(frozen=True, slots=True)
class Clicked:
    """What a custom id asks: the action (a `Redo`, or the edit form) and the turn."""

    action: str
    turn_id: str

    @property
    def redo(self) -> Redo:
        """The redo the click or form asks for."""
        return Redo.EDIT if self.action == EDIT_FORM else Redo(self.action)


def parse(custom_id: object) -> Clicked | None:
    """The click a custom id of ours names; None for anything else."""
    if not isinstance(custom_id, str):
        return None
    match = _CUSTOM_ID.match(custom_id)
    return Clicked(match[1], match[2]) if match else None


def custom_id(action: str, turn_id: str) -> str:
    """`samsar:<action>:<turn id>`."""
    return f"{PREFIX}:{action}:{turn_id}"


def picture_buttons(turn_id: str) -> discord.ui.View:
    """Regenerate, Edit…, HD and a size select, under a generated picture."""
    view = discord.ui.View(timeout=None)
    style = discord.ButtonStyle.secondary
    view.add_item(
        discord.ui.Button(
            label="Regenerate",
            emoji="🔁",
            style=style,
            custom_id=custom_id(Redo.REGENERATE, turn_id),
        )
    )
    view.add_item(
        discord.ui.Button(
            label="Edit…", emoji="✏️", style=style, custom_id=custom_id(Redo.EDIT, turn_id)
        )
    )
    view.add_item(discord.ui.Button(label="HD", style=style, custom_id=custom_id(Redo.HD, turn_id)))
    view.add_item(
        discord.ui.Select(
            custom_id=custom_id(Redo.SIZE, turn_id),
            placeholder="Another size…",
            options=[discord.SelectOption(label=size, value=size) for size in SIZES],
            row=1,
        )
    )
    view.stop()  # nothing to keep in memory: the cog answers every click by its custom id
    return view


def failure_buttons(turn_id: str, error: BotError) -> discord.ui.View | None:
    """Try again under a failure Samsar may get over; Buy credits under out-of-credits."""
    if isinstance(error, RETRYABLE):
        view = discord.ui.View(timeout=None)
        view.add_item(
            discord.ui.Button(
                label="Try again",
                emoji="🔁",
                style=discord.ButtonStyle.primary,
                custom_id=custom_id(Redo.RETRY, turn_id),
            )
        )
    elif isinstance(error, InsufficientCredits) and error.checkout_url:
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(label="Buy credits", emoji="💳", url=error.checkout_url))
    else:
        return None
    view.stop()
    return view


class EditForm(discord.ui.Modal):
    """The instruction for an edit; its submission is answered by the buttons cog."""

    def __init__(self, turn_id: str) -> None:
        super().__init__(title="Edit this picture", custom_id=custom_id(EDIT_FORM, turn_id))
        self.add_item(
            discord.ui.TextInput(
                label="What should change?",
                placeholder="make it night, add a red hat…",
                custom_id=INSTRUCTION,
                max_length=1000,
            )
        )
        self.stop()  # not kept in memory: a submission after a restart is answered the same

"""The sentences only the Discord adapter says (shared ones live in `bots.texts`)."""

from __future__ import annotations

from bots import texts

COMMANDS = texts.Commands(buy="/buy", new_chat="/chat", reset="/reset")
"""How error messages name the Discord commands."""

NO_ANSWER = "The assistant had nothing to say to that. Try rephrasing?"
NO_THREAD = (
    "I couldn't open a thread for this conversation (I need the Create Public Threads "
    "permission here), so this answer stands alone."
)
NOTHING_TO_RESET = "There's no conversation here to reset. Start one with `/chat`."
RESET_DONE = "Done: your next message here starts a fresh conversation."
RESET_NONE = "There was no conversation to reset here; your next message starts one."
THREAD_FALLBACK_NAME = "Samsar chat"
SLOW = (
    "Samsar is taking longer than usual. I'll post the answer here as soon as it arrives "
    "(you're only charged once)."
)
UNEXPECTED = texts.UNEXPECTED
PERSONA_SET = "Your persona is set; it applies to your next messages."
PERSONA_CLEARED = "Your persona is cleared."
PERSONA_NONE = "You have no persona set. Set one with `/persona set`."
PROMPT_NONE = "No admin prompt is set for this {scope}."
PROMPT_CLEARED = "The {scope} prompt is cleared."
PROMPT_WAS_NONE = "There was no {scope} prompt to clear."
PROMPT_SET = "The {scope} prompt is set; it reaches each conversation's next turn."


THINKING = "Thinking…"

UNKNOWN_COMPONENT = (
    "That button or menu is from an earlier version of this bot and does nothing any more. "
    "Please use the slash commands."
)
UNKNOWN_FORM = (
    "That form is from an earlier version of this bot, so what you entered was not used. "
    "Please use the slash commands."
)
UNREADABLE_INTERACTION = (
    "Discord sent this in a shape I couldn't read, so nothing was done. Please try again."
)
NOT_ENABLED_HERE = "Samsar is not enabled on this server, so nothing was done."


def unknown_command(name: str) -> str:
    """A command this bot does not have (any more)."""
    return (
        f"I don't know `/{name}`: it may be from an earlier version of this bot. "
        "Type / to see the current commands."
    )


def stale_command(name: str) -> str:
    """A command whose options no longer match what the bot expects."""
    return (
        f"`/{name}` has changed since Discord last showed it to you. "
        "Type / and pick it again (Discord may take a moment to catch up)."
    )


def missing_option(command: str, option: str) -> str:
    """A required option that did not come with the command."""
    return f"`/{command}` needs the option `{option}`. Please run it again with it."


def wrong_option(command: str, option: str, expected: str) -> str:
    """An option of another type, or outside its range."""
    return f"The option `{option}` of `/{command}` must be {expected}."


def generating(seconds: int) -> str:
    """The status of an image generation that is still running."""
    return f"🎨 Generating your image… {seconds} s"


UNDELIVERABLE = (
    "I couldn't post your answer here after several tries. Please ask again in a moment."
)


def undeliverable(mention: str) -> str:
    """The note left when an answer could not be posted after every try."""
    return (
        f"{mention} I couldn't post your answer here after several tries. "
        "Please ask again in a moment."
    )


def late_answer(mention: str) -> str:
    """The head of an answer posted to the channel after the interaction expired."""
    return f"{mention} your answer took longer than Discord keeps a command open, so here it is:"


def subtext(line: str) -> str:
    """Discord's small grey line (`-# `), used for the credits line."""
    return f"-# {line}"


def fitted(note: str) -> str:
    """How a picture changed to fit the upload limit."""
    return f"-# {note}"


def reencoded(limit: int) -> str:
    """A picture re-encoded as JPEG to fit."""
    return f"Re-encoded as JPEG to fit Discord's {_size(limit)} upload limit."


def downscaled(width: int, height: int, limit: int) -> str:
    """A picture shrunk to fit."""
    return f"Downscaled to {width}×{height} (JPEG) to fit Discord's {_size(limit)} upload limit."


def not_uploadable(filename: str, limit: int) -> str:
    """A picture that could not be made small enough."""
    return f"The image {filename} could not be made small enough for the {_size(limit)} limit."


def persona_show(persona: str) -> str:
    """The member's persona, quoted."""
    return f"Your persona:\n>>> {persona}"


def prompt_show(scope: str, text: str) -> str:
    """An admin prompt, quoted."""
    return f"The {scope} prompt:\n>>> {text}"


def buy_link(credits: int, url: str) -> str:
    """The checkout link answer."""
    return f"Buy {credits:,} credits here: {url}"


def studio_link(url: str) -> str:
    """The Studio login link answer."""
    return f"Your Samsar Studio login link (short-lived, keep it private): {url}"


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):.0f} MB"
    return f"{max(limit // 1024, 1)} KB"

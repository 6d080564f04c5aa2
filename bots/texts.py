"""Every sentence a member or admin reads, in one place, for every platform."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core import errors
from core.models import Credits, ImageProblem


@dataclass(frozen=True, slots=True)
class Commands:
    """How each platform spells the commands a message may point to."""

    buy: str = "/buy"
    new_chat: str = "/chat"
    reset: str = "/reset"


def _credits_number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def credits_line(credits: Credits) -> str | None:
    """The small line under an answer: what it cost and what is left."""
    parts = []
    if credits.charged is not None:
        noun = "credit" if credits.charged == 1 else "credits"
        parts.append(f"{_credits_number(credits.charged)} {noun} used")
    if credits.remaining is not None:
        parts.append(f"{_credits_number(credits.remaining)} left")
    return " · ".join(parts) if parts else None


def image_problems_line(problems: tuple[ImageProblem, ...], credits: Credits) -> str | None:
    """What became of pictures that are not in the answer, and what the answer still cost."""
    if not problems:
        return None
    sentences = []
    if missing := problems.count(ImageProblem.NOT_MADE):
        subject = "The image" if missing == 1 else f"{missing} images"
        sentences.append(f"{subject} could not be made: Samsar reported a failure.")
    if broken := problems.count(ImageProblem.UNREADABLE):
        subject, it = ("an image", "it is") if broken == 1 else (f"{broken} images", "they are")
        sentences.append(f"Samsar sent {subject} the bot could not read, so {it} not shown.")
    if credits.charged is not None:
        noun = "credit" if credits.charged == 1 else "credits"
        sentences.append(f"This answer still used {_credits_number(credits.charged)} {noun}.")
    return " ".join(sentences)


ANSWER_FILE = "answer.md"
LONG_ANSWER = (
    f"This answer is long, so only its beginning is shown here: the whole answer is in "
    f"the attached file {ANSWER_FILE}."
)
ANSWER_FILE_FAILED = f"The file {ANSWER_FILE} with the whole answer could not be attached."


def balance_text(remaining: float | None) -> str:
    """The answer to a credits command."""
    if remaining is None:
        return "Samsar did not say how many credits you have left. Try again in a moment."
    return f"You have {_credits_number(remaining)} credits."


def describe(error: errors.BotError, commands: Commands = Commands()) -> str:
    """One clear sentence or two for any error that ends a member's action."""
    match error:
        case errors.InsufficientCredits():
            left = (
                f" (you have {_credits_number(error.credits_remaining)} left)"
                if error.credits_remaining is not None
                else ""
            )
            return (
                f"You're out of credits for this{left}. "
                f"Buy more with `{commands.buy} <credits>` and try again."
            )
        case errors.RateLimited():
            wait = " in a minute"
            if error.retry_after and error.retry_after > _LONGEST_WAIT_SHOWN:
                wait = " later"  # an odd Retry-After (days, years) is not read out
            elif error.retry_after:
                wait = f" in about {round(error.retry_after)} s"
            return f"Samsar is busy right now (rate limited). Please try again{wait}."
        case errors.SamsarTimeout():
            return (
                "Samsar took too long to answer. If it still finishes, it is billed once; "
                "please try again in a moment."
            )
        case errors.SamsarUnreachable() | errors.UpstreamError():
            return "Samsar is unavailable right now. Please try again in a few minutes."
        case errors.AuthenticationFailed():
            return MISCONFIGURED
        case errors.MalformedResponse():
            return "Samsar sent an answer the bot could not read. Please try again."
        case errors.NotFound():
            return (
                "Samsar no longer knows this conversation. "
                f"Start a new one with `{commands.reset}`."
            )
        case errors.BadRequest() if error.status == 413:
            return "That was too large for Samsar. Send a shorter message or smaller images."
        case errors.BadRequest():
            # Samsar's own words stay in the log: they may be technical, or quote our request.
            return (
                "Samsar could not accept this request. Try rephrasing it; if it keeps "
                "happening, the bot's operator can find the details in the log."
            )
        case errors.NotThreadOwner():
            owner = f" belongs to {error.owner_display}" if error.owner_display else " is not yours"
            return (
                f"This conversation{owner}. Start your own with `{commands.new_chat}` "
                "or by mentioning me outside this thread."
            )
        case errors.NotAdmin():
            return "Only workspace admins can change the assistant's instructions."
        case errors.InputRejected():
            return _input_rejected(error)
        case errors.SlowDown():
            return (
                "You're sending messages faster than this bot allows. "
                f"Slow down and try again in {max(1, math.ceil(error.wait))} s."
            )
        case _:
            return UNEXPECTED


def in_line(place: int | None) -> str:
    """What a turn that has not started shows: its place in line, or that it waits for the
    answer before it in the same conversation."""
    if place is None:
        return "Waiting for the previous answer in this conversation…"
    return f"#{place} in line: the bot is busy, your turn is coming…"


UNEXPECTED = "Something went wrong. Please try again."
_LONGEST_WAIT_SHOWN = 3600.0
MISCONFIGURED = (
    "The bot is misconfigured right now, and its operator has been told. Please try again later."
)
KEY_REFUSED = "The Samsar key was refused: check SAMSAR_API_KEY."
"""What the operator reads in the CLI when Samsar refuses the key (members read MISCONFIGURED)."""


def _input_rejected(error: errors.InputRejected) -> str:
    limit = error.limit
    match error.reason:
        case errors.InputRejected.EMPTY:
            return "Your message is empty: write something for the assistant."
        case errors.InputRejected.TOO_LONG:
            return f"Your message is too long: the limit is {limit:,} characters."
        case errors.InputRejected.TOO_MANY_IMAGES:
            return f"Too many images: send at most {limit} per message."
        case errors.InputRejected.IMAGE_TOO_LARGE:
            size = f"{(limit or 0) / (1024 * 1024):.0f} MB"
            return f"The image {error.detail or ''} is too large: the limit is {size}.".replace(
                "  ", " "
            )
        case errors.InputRejected.IMAGE_UNREADABLE:
            return "That attachment is not an image I can read (PNG, JPEG, WebP or GIF)."
        case errors.InputRejected.USAGE:
            return error.detail or "That command is not written the way it is used."
        case errors.InputRejected.GONE:
            return "That is too old to use again: ask for it anew."
        case _:
            return f"That value is not valid: {error.detail or 'check the command'}."


def duplicate_ignored() -> str:
    """Logged (not shown) when a redelivered event is dropped."""
    return "already answered"


HELP_CONSOLE = """\
Type a message to talk to the assistant in this conversation. Commands:
  /imagine [--size WxH] [--quality auto|low|medium|high] [--format png|jpeg|webp] <prompt>
  /reset                 start a fresh conversation
  /credits               your credit balance
  /buy <credits>         a checkout link to buy credits
  /studio                a short-lived Samsar Studio login link
  /persona set <text> | show | clear     your own system prompt
  /prompt set [workspace|channel] <text> | show | clear [workspace|channel]   (admins)
  /help                  this help
  /quit                  leave"""

"""Sentences only Slack members read; errors are rendered by `bots.texts.describe`."""

from __future__ import annotations

from bots import texts
from bots.slack.mrkdwn import escape
from core.models import PromptScope

COMMANDS = texts.Commands(buy="/samsar buy", new_chat="@mention me", reset="/samsar reset")

THINKING = "_Thinking…_"
STATUS_THINKING = "is thinking…"


def still_working(seconds: float, *, drawing: bool) -> str:
    """The placeholder while a long turn runs, with the elapsed time."""
    verb = "Drawing" if drawing else "Thinking"
    return f"_{verb}… {seconds:.0f} s_"


def status_working(seconds: float, *, drawing: bool) -> str:
    """The assistant status line while a long turn runs."""
    verb = "is drawing" if drawing else "is thinking"
    return f"{verb}… {seconds:.0f} s"


def asked(user_id: str, verb: str, text: str) -> str:
    """The visible root of a conversation started by `/samsar ask|imagine` (mrkdwn: the
    member's words escaped, only the asker's own mention is a mention)."""
    return f"<@{user_id}> {verb}: {escape(text)}"


def image_failed(filename: str) -> str:
    """Shown in the thread when a generated image could not be uploaded."""
    return f"I made an image ({filename}) but could not upload it to Slack. Please try again."


def not_in_channel() -> str:
    """The bot cannot post where a slash command was typed."""
    return (
        "I can't post in this conversation. Invite me with `/invite @Samsar`, "
        "or talk to me in a direct message."
    )


def checkout(credits: int, url: str) -> str:
    """The private answer to `/samsar buy`."""
    return f"Buy {credits:,} credits here: <{url}|checkout>"


def studio(url: str) -> str:
    """The private answer to `/samsar studio`."""
    return f"Your Samsar Studio login link (short-lived, only for you): <{url}|open Studio>"


def persona(text: str | None) -> str:
    """The private answer to `/samsar persona show`."""
    return f"Your persona: {text}" if text else "You have no persona set."


PERSONA_SET = "Your persona is set; it applies to your next messages."
PERSONA_CLEARED = "Your persona is cleared."
RESET_DONE = "Done: that conversation starts afresh the next time you mention me in it."
RESET_NOTHING = (
    "There is no conversation of yours here to reset. Mention me in a new message to start one."
)
GREETING = "Hi! Ask me anything, or ask for an image. Each thread is its own conversation."
NOTHING_SAID = "The assistant had nothing to say to that. Try rephrasing?"
SLOW = (
    "_Samsar is taking longer than usual. I'll post the answer here as soon as it arrives "
    "(you're only charged once)._"
)
UNDELIVERABLE = (
    "I couldn't post your answer here after several tries. Please ask again in a moment."
)


def prompt_set(scope: PromptScope) -> str:
    """After an admin sets a prompt."""
    return f"The {scope.value} prompt is set; it reaches each conversation's next turn."


def prompt_cleared(scope: PromptScope, removed: bool) -> str:
    """After an admin clears a prompt."""
    return f"The {scope.value} prompt is cleared." if removed else "There was none."


def prompt_shown(text: str | None) -> str:
    """The admin prompt in force."""
    return f"Admin instructions in force here:\n>>> {text}" if text else "No admin prompt is set."


def unknown_command(name: str) -> str:
    """An unknown `/samsar` subcommand."""
    return f"I don't know `/samsar {name}`. Try `/samsar help`."


# Static sentences with <placeholders> are escaped, or Slack would read them as links.
HELP = escape("""\
*Talk to Samsar*
• Mention me in a channel: I answer in a thread, and the thread is your conversation.
• Reply in that thread to continue it (no mention needed). DM me to talk privately.
*`/samsar` commands*
• `ask <question>` · `imagine [size=WxH] [quality=low|medium|high|auto] <prompt>`
• `credits` · `buy <credits>` · `studio` (a Samsar Studio login link)
• `persona set <text>` | `show` | `clear` — your own instructions for the assistant
• `prompt set [workspace|channel] <text>` | `show` | `clear [workspace|channel]` — admins
• `reset` — start your latest conversation in this channel afresh · `help`""")

# Raw: these reach members through describe(), which escapes them.
USAGE_BUY = "Usage: /samsar buy <credits>"
USAGE_IMAGINE = (
    "Usage: /samsar imagine [--size WxH] [--quality auto|low|medium|high] "
    "[--format png|jpeg|webp] <prompt>"
)
USAGE_PERSONA = escape("Usage: /samsar persona set <text> | show | clear")
USAGE_PROMPT = escape("Usage: /samsar prompt set [workspace|channel] <text> | show | clear [scope]")


def home_credits(remaining: float | None) -> str:
    """The credits line of the App Home tab."""
    return f"*Credits:* {texts.balance_text(remaining)}"


def home_persona(text: str | None) -> str:
    """The persona line of the App Home tab."""
    return f"*Your persona:* {text}" if text else "*Your persona:* none (`/samsar persona set`)"


PICTURE_NEXT = "What next with this picture?"
FORM_GONE = "That form is too old to use: click Edit… again."
THANKS_FEEDBACK = "Thanks for the feedback."

"""Names and avatar links of members, bounded before they reach Samsar.

They travel in every Samsar call on a member's behalf, in GET query strings too (`/credits`),
so a platform field of any length or type must not break a call: names are cut to a length
both platforms' own limits stay under, links must be plain web addresses of sane length.
"""

from __future__ import annotations

import re
import unicodedata

NAME_CHARS = 80  # Slack's display and real names are at most 80; Discord's names 32
URL_CHARS = 2_048
_URL = re.compile(r"https?://[!-~]+", re.ASCII)  # printable ASCII, no spaces
_SPACES = re.compile(r"\s+")
# Controls, lone surrogates (no UTF-8 can carry them), unassigned and private-use code points,
# and the bidi overrides that would turn the text around it; joiners (emoji) stay.
_DROPPED = frozenset({"Cc", "Cs", "Cn", "Co"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def bounded_name(value: object, limit: int = NAME_CHARS) -> str | None:
    """A one-line name of at most `limit` characters without control characters, or None
    when there is no usable text."""
    if not isinstance(value, str):
        return None
    kept = "".join(ch for ch in value[: limit * 4] if _kept(ch))
    flat = _SPACES.sub(" ", kept).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat or None


def bounded_url(value: object) -> str | None:
    """An http(s) link of at most URL_CHARS printable ASCII characters, or None."""
    if not isinstance(value, str) or len(value) > URL_CHARS or not _URL.fullmatch(value):
        return None
    return value


def _kept(ch: str) -> bool:
    return unicodedata.category(ch) not in _DROPPED and ch not in _BIDI_CONTROLS

"""Image choices written inline before a prompt: `size=512x512 quality=low` or `--size 512x512`."""

from __future__ import annotations

from core.models import ImageChoice

FLAGS = ("size", "quality", "format")


def split_image_flags(text: str) -> tuple[ImageChoice, str]:
    """The leading image flags as a choice, and the prompt after them (core checks the values)."""
    words = text.split()
    values: dict[str, str] = {}
    while words:
        flag, sep, value = words[0].lower().lstrip("-").partition("=")
        if sep and flag in FLAGS and value:
            values[flag], words = value, words[1:]
        elif words[0].startswith("--") and flag in FLAGS and len(words) > 1:
            values[flag], words = words[1].lower(), words[2:]
        else:
            break
    return ImageChoice(**values), " ".join(words)

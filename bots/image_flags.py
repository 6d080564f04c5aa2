"""Image choices written inline before a prompt: `size=512x512 quality=low` or `--size 512x512`.

A leading `--word` is always meant as an option: one the image tool does not know, or one
without its value, is a usage error (nothing is drawn, nothing billed), never part of the
prompt."""

from __future__ import annotations

from core.errors import InputRejected
from core.models import ImageChoice

FLAGS = ("size", "quality", "format")


def split_image_flags(text: str, usage: str) -> tuple[ImageChoice, str]:
    """The leading image flags as a choice, and the prompt after them (core checks the
    values); InputRejected(USAGE, detail=`usage`, with what was wrong) for a bad option."""
    words = text.split()
    values: dict[str, str] = {}
    while words:
        word = words[0]
        flag, sep, value = word.lower().lstrip("-").partition("=")
        dashed = word.startswith("--")
        if sep and flag in FLAGS and value:
            values[flag], words = value, words[1:]
        elif dashed and flag in FLAGS and not sep and len(words) > 1:
            values[flag], words = words[1].lower(), words[2:]
        elif dashed and flag in FLAGS:
            raise InputRejected(InputRejected.USAGE, detail=f"--{flag} needs a value. {usage}")
        elif dashed:
            known = ", ".join(f"--{name}" for name in FLAGS)
            raise InputRejected(
                InputRejected.USAGE, detail=f"Unknown option {word} (there are {known}). {usage}"
            )
        else:
            break
    return ImageChoice(**values), " ".join(words)

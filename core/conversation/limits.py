"""Input limits: what a member may send in one message, checked before anything is billed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InputRejected
from core.models import ImageOptions, InputImage
from core.samsar.images import detect_image_format

_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
QUALITIES = ("auto", "low", "medium", "high")
FORMATS = ("png", "jpeg", "webp")
MIN_SIDE, MAX_SIDE = 256, 4096


@dataclass(frozen=True, slots=True)
class InputLimits:
    """Limits on one member message."""

    max_chars: int = 8000
    max_images: int = 4
    max_image_bytes: int = 8 * 1024 * 1024


def check_text(text: str, has_attachments: bool, limits: InputLimits) -> None:
    """At intake, before any file is fetched: not empty, not too long."""
    if not text.strip() and not has_attachments:
        raise InputRejected(InputRejected.EMPTY)
    if len(text) > limits.max_chars:
        raise InputRejected(InputRejected.TOO_LONG, limit=limits.max_chars)


def check_message(text: str, images: tuple[InputImage, ...], limits: InputLimits) -> None:
    """Raise InputRejected when the message is empty or breaks a limit."""
    if not text.strip() and not images:
        raise InputRejected(InputRejected.EMPTY)
    if len(text) > limits.max_chars:
        raise InputRejected(InputRejected.TOO_LONG, limit=limits.max_chars)
    if len(images) > limits.max_images:
        raise InputRejected(InputRejected.TOO_MANY_IMAGES, limit=limits.max_images)
    for image in images:
        if len(image.data) > limits.max_image_bytes:
            raise InputRejected(
                InputRejected.IMAGE_TOO_LARGE, limit=limits.max_image_bytes, detail=image.filename
            )
        if detect_image_format(image.data) is None:
            raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=image.filename)


ACTIONS = ("auto", "generate", "edit")


def check_image_options(options: ImageOptions) -> ImageOptions:
    """Validate the image tool options a member chose; returns them normalised."""
    size = options.size.strip().lower()
    if size != "auto":
        match = _SIZE.match(size)
        sides = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        if not all(MIN_SIDE <= side <= MAX_SIDE for side in sides):
            raise InputRejected(
                InputRejected.BAD_VALUE,
                detail=f"size must be auto or WIDTHxHEIGHT between {MIN_SIDE} and {MAX_SIDE}",
            )
    quality = options.quality.strip().lower()
    if quality not in QUALITIES:
        raise InputRejected(
            InputRejected.BAD_VALUE, detail=f"quality must be one of {', '.join(QUALITIES)}"
        )
    fmt = options.format.strip().lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise InputRejected(
            InputRejected.BAD_VALUE, detail=f"format must be one of {', '.join(FORMATS)}"
        )
    action = options.action.strip().lower() if options.action else None
    if action not in (None, *ACTIONS):
        raise InputRejected(
            InputRejected.BAD_VALUE, detail=f"action must be one of {', '.join(ACTIONS)}"
        )
    return ImageOptions(size=size, quality=quality, format=fmt, action=action)

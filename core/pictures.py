"""Opening pictures with Pillow under one pixel bound, and checking that a picture decodes."""

from __future__ import annotations

import enum
import io
import logging

from PIL import Image

log = logging.getLogger(__name__)

MAX_PIXELS = 2 * 4096 * 4096
"""Twice the largest picture the image tool makes (4096×4096): beyond it a picture is not
decoded here (Pillow warns above this bound and refuses twice it as a decompression bomb)."""


class Verdict(enum.StrEnum):
    """What a decode check found."""

    GOOD = "good"  # opened, verified and fully decoded
    UNCHECKED = "unchecked"  # a well-formed header with too many pixels to decode safely
    BROKEN = "broken"  # not a picture Pillow can read to the end


def open_picture(data: bytes) -> Image.Image:
    """`Image.open` with Pillow's pixel bound set to MAX_PIXELS (raises as Image.open does)."""
    # Set explicitly rather than trusting whatever a library or an earlier caller left there.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image.open(io.BytesIO(data))


def check_picture(data: bytes) -> Verdict:
    """Verify the structure, then decode every pixel when there are at most MAX_PIXELS.

    CPU-bound (a full decode): call it off the event loop.
    """
    try:
        with open_picture(data) as probe:
            width, height = probe.size
            probe.verify()
        if width * height > MAX_PIXELS:
            return Verdict.UNCHECKED
        with open_picture(data) as picture:
            picture.load()
    except Image.DecompressionBombError:
        return Verdict.UNCHECKED
    except Exception as exc:
        # Pillow's decoders raise many unrelated types on corrupt input (OSError, SyntaxError,
        # struct.error, IndexError, ValueError...): for untrusted bytes each means "broken".
        log.info("picture does not decode", extra={"error": type(exc).__name__})
        return Verdict.BROKEN
    return Verdict.GOOD

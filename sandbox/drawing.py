"""Deterministic sandbox images: a colour from the prompt's hash with the prompt written on it."""

from __future__ import annotations

import hashlib
import io
import random
import re
import textwrap
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

ImageFormat = Literal["png", "jpeg", "webp"]
FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "webp")
MIN_SIDE = 64
MAX_SIDE = 4096
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def parse_size(size: str) -> tuple[int, int]:
    """`"WxH"` → (W, H) with both sides in 64..4096; `"auto"` → (1024, 1024); else ValueError."""
    if size == "auto":
        return (1024, 1024)
    match = _SIZE.match(size.strip().lower())
    if match is None:
        raise ValueError(f"size must be 'auto' or 'WxH', got {size!r}")
    width, height = int(match.group(1)), int(match.group(2))
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"size sides must be between {MIN_SIDE} and {MAX_SIDE}, got {size!r}")
    return (width, height)


def colour_of(prompt: str) -> tuple[int, int, int]:
    """The background colour derived from the prompt's SHA-256."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return (digest[0], digest[1], digest[2])


def _ink_for(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `colour`."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _noise(prompt: str, width: int, height: int) -> Image.Image:
    """Seeded random RGB noise: incompressible, so the encoded file is large."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    data = random.Random(seed).randbytes(width * height * 3)
    return Image.frombytes("RGB", (width, height), data)


def _write(image: Image.Image, text: str, *, top: float, colour: tuple[int, int, int]) -> None:
    """Write wrapped `text` on `image`, starting at fraction `top` of its height."""
    width, height = image.size
    font_size = max(10, min(width, height) // 20)
    font = ImageFont.load_default(size=font_size)
    chars_per_line = max(8, int(width / (font_size * 0.6)) - 2)
    lines = textwrap.wrap(text, chars_per_line)[:6] or [""]
    draw = ImageDraw.Draw(image)
    draw.multiline_text(
        (font_size // 2, int(height * top)), "\n".join(lines), fill=_ink_for(colour), font=font
    )


def draw(
    prompt: str,
    size: str = "auto",
    fmt: ImageFormat = "png",
    *,
    base: bytes | None = None,
    noise: bool = False,
) -> bytes:
    """Encode a deterministic image for `prompt`; with `base`, an edit drawn from that image."""
    width, height = parse_size(size)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    colour = colour_of(prompt)
    if noise:
        image = _noise(prompt, width, height)
    elif base is not None:
        with Image.open(io.BytesIO(base)) as previous:
            earlier = previous.convert("RGB").resize((width, height))
        tint = Image.new("RGB", (width, height), colour)
        image = Image.blend(earlier, tint, 0.4)
    else:
        image = Image.new("RGB", (width, height), colour)
    _write(image, prompt, top=0.55 if base is not None else 0.1, colour=colour)
    out = io.BytesIO()
    image.save(out, format=_PIL_FORMAT[fmt], **({"quality": 90} if fmt != "png" else {}))
    return out.getvalue()


def sniff_format(data: bytes) -> str | None:
    """The image type by magic bytes: png, jpeg, gif or webp; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None

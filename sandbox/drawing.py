"""Deterministic sandbox images that follow the prompt: the colours it names (the first, or the
one before "background", fills the picture; one before a shape colours the shape), the simple
shapes it names (circle, square, triangle, star, sun, moon, heart), the prompt written below.
An edit starts from the earlier picture and applies the instruction: a colour tints it, "night"
or "dark" darkens it, "day" or "bright" lightens it, named shapes are added. A prompt naming no
colour gets one from its hash. Text is drawn with DejaVu Sans when the machine has it (with
right-to-left layout where Pillow has raqm), else Pillow's own font; characters no font here
draws (emoji beyond the basic plane, joiners) are left out rather than drawn as boxes."""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, features

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


COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 210, 40),
    "gold": (212, 175, 55),
    "green": (46, 160, 67),
    "teal": (30, 140, 140),
    "cyan": (40, 200, 220),
    "blue": (40, 90, 220),
    "navy": (20, 30, 100),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "brown": (130, 80, 40),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "sun", "moon", "heart")
_BACKDROPS = ("background", "sky", "sea", "wall", "backdrop")
_DARKER = ("night", "dark", "darker", "evening", "dusk")
_LIGHTER = ("day", "bright", "brighter", "light", "lighter", "noon")
_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)
_WORD = re.compile(r"[a-z]+")


def colour_of(prompt: str) -> tuple[int, int, int]:
    """The colour derived from the prompt's SHA-256 (for a prompt that names none)."""
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


@dataclass(frozen=True)
class Scene:
    """What a prompt asks to see: a background colour (None: none named) and coloured shapes."""

    background: tuple[int, int, int] | None
    shapes: tuple[tuple[str, tuple[int, int, int] | None], ...]


def scene_of(prompt: str) -> Scene:
    """The colours and shapes a prompt names, and which colour goes with which."""
    words = _WORD.findall(prompt.lower())
    background: tuple[int, int, int] | None = None
    shapes: list[tuple[str, tuple[int, int, int] | None]] = []
    loose: list[tuple[int, int, int]] = []
    for index, word in enumerate(words):
        if word not in COLOURS:
            continue
        after = words[index + 1 : index + 3]
        if any(w in _BACKDROPS for w in after):
            background = COLOURS[word]
        elif not any(w in SHAPES for w in after):
            loose.append(COLOURS[word])
    for index, word in enumerate(words):
        shape = "square" if word in ("square", "box") else word
        if shape not in SHAPES:
            continue
        before = [w for w in words[max(0, index - 2) : index] if w in COLOURS]
        shapes.append((shape, COLOURS[before[-1]] if before else None))
    if background is None and loose:
        background = loose[0]
    return Scene(background, tuple(shapes))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONTS:
        if Path(path).exists():
            engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
            return ImageFont.truetype(path, size, layout_engine=engine)
    return ImageFont.load_default(size=size)


def drawable(text: str) -> str:
    """`text` without what no font here draws: emoji beyond the basic plane, variation
    selectors and joiners (left out, not drawn as boxes)."""
    kept = (c for c in text if ord(c) <= 0xFFFF and c not in "\u200d\ufe0e\ufe0f")
    return " ".join("".join(kept).split())


def _write(image: Image.Image, text: str, *, top: float) -> None:
    """Write wrapped `text` on `image` from fraction `top` of its height, on a band that keeps
    it readable whatever is behind it."""
    width, height = image.size
    font_size = max(10, min(width, height) // 20)
    font = _font(font_size)
    chars_per_line = max(8, int(width / (font_size * 0.6)) - 2)
    lines = textwrap.wrap(drawable(text), chars_per_line)[:4] or [""]
    draw = ImageDraw.Draw(image)
    y = int(height * top)
    band = (0, y - font_size // 4, width, min(height, y + len(lines) * font_size * 5 // 4 + 4))
    draw.rectangle(band, fill=(250, 250, 250))
    draw.multiline_text((font_size // 2, y), "\n".join(lines), fill=(20, 20, 20), font=font)


def _shape(
    draw: ImageDraw.ImageDraw,
    name: str,
    box: tuple[int, int, int, int],
    fill: tuple[int, int, int],
    ground: tuple[int, int, int],
) -> None:
    left, top, right, bottom = box
    cx, cy, r = (left + right) / 2, (top + bottom) / 2, (right - left) / 2
    if name in ("circle", "sun"):
        draw.ellipse(box, fill=fill)
        if name == "sun":
            for k in range(12):
                a = k * math.pi / 6
                inner = (cx + r * 1.1 * math.cos(a), cy + r * 1.1 * math.sin(a))
                outer = (cx + r * 1.4 * math.cos(a), cy + r * 1.4 * math.sin(a))
                draw.line([inner, outer], fill=fill, width=max(2, int(r / 8)))
    elif name == "square":
        draw.rectangle(box, fill=fill)
    elif name == "triangle":
        draw.polygon([(cx, top), (right, bottom), (left, bottom)], fill=fill)
    elif name == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
        draw.polygon(points, fill=fill)
    elif name == "moon":  # a crescent: the disc, less a disc of the background beside it
        draw.ellipse(box, fill=fill)
        shift = r * 0.55
        draw.ellipse(
            (left + shift, top - shift / 3, right + shift, bottom - shift / 3), fill=ground
        )
    elif name == "heart":
        draw.ellipse((left, top, cx, cy + r * 0.2), fill=fill)
        draw.ellipse((cx, top, right, cy + r * 0.2), fill=fill)
        draw.polygon([(left + r * 0.05, cy), (right - r * 0.05, cy), (cx, bottom)], fill=fill)


def _shapes(image: Image.Image, scene: Scene, ground: tuple[int, int, int]) -> None:
    """The scene's shapes side by side across the upper part of the picture."""
    if not scene.shapes:
        return
    width, height = image.size
    draw = ImageDraw.Draw(image)
    count = len(scene.shapes[:4])
    cell = width // count
    side = int(min(cell, height * 0.5) * 0.6)
    for index, (name, colour) in enumerate(scene.shapes[:4]):
        fill = colour or _ink_for(ground)
        cx, cy = cell * index + cell // 2, int(height * 0.3)
        box = (cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)
        _shape(draw, name, box, fill, ground)


def _edited(earlier: Image.Image, instruction: str) -> tuple[Image.Image, tuple[int, int, int]]:
    """The earlier picture with the instruction applied, and its dominant colour now."""
    words = set(_WORD.findall(instruction.lower()))
    image = earlier
    named = scene_of(instruction)
    tint = named.background
    if tint is not None:
        image = Image.blend(image, Image.new("RGB", image.size, tint), 0.45)
    if words & set(_DARKER):
        image = ImageEnhance.Brightness(image).enhance(0.4)
    elif words & set(_LIGHTER):
        image = ImageEnhance.Brightness(image).enhance(1.5)
    ground = image.resize((1, 1)).getpixel((0, 0))
    assert isinstance(ground, tuple)
    return image, (int(ground[0]), int(ground[1]), int(ground[2]))


def draw(
    prompt: str,
    size: str = "auto",
    fmt: ImageFormat = "png",
    *,
    base: bytes | None = None,
    noise: bool = False,
) -> bytes:
    """Encode a deterministic picture of `prompt`; with `base`, `prompt` as an edit of it."""
    width, height = parse_size(size)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    scene = scene_of(prompt)
    if noise:
        image = _noise(prompt, width, height)
        ground = colour_of(prompt)
    elif base is not None:
        with Image.open(io.BytesIO(base)) as previous:
            earlier = previous.convert("RGB").resize((width, height))
        image, ground = _edited(earlier, prompt)
    else:
        ground = scene.background or colour_of(prompt)
        image = Image.new("RGB", (width, height), ground)
    _shapes(image, scene, ground)
    caption = f"Edit: {prompt}" if base is not None and not noise else prompt
    _write(image, caption, top=0.72)
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

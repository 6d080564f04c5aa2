"""Fitting a picture under Discord's upload limit with Pillow: re-encode first, then downscale.

Re-encoding holds the GIL for the whole of a Pillow call (up to a second for a 4096² picture),
so `fit` does it in a worker process, the picture going there and back in a parcel; a picture
that fits already is never sent anywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bots.discord import texts
from core.offload import Parcel, offload, receive, send
from core.pictures import MAX_PIXELS, open_picture

_QUALITIES = (90, 80, 70)
_MIN_SIDE = 16


class CannotFit(Exception):
    """The picture could not be read or made small enough."""


@dataclass(frozen=True, slots=True)
class Fitted:
    """A picture ready to upload; `note` says how it was changed (None: untouched)."""

    data: bytes
    filename: str
    note: str | None = None


async def fit(data: bytes, filename: str, limit: int) -> Fitted:
    """`fit_image` away from the event loop (raises CannotFit as it does)."""
    if len(data) <= limit:
        return Fitted(data, filename)
    sent = await send(data)
    try:
        fitted, back = await offload(len(data), fit_parcel, sent, filename, limit)
    finally:
        await asyncio.to_thread(sent.discard)  # read already, unless the worker failed first
    return dataclasses.replace(fitted, data=await receive(back))


def fit_parcel(parcel: Parcel, filename: str, limit: int) -> tuple[Fitted, Parcel]:
    """For a worker process: `fit_image` of the parcel's picture, the result's bytes sent back
    in a parcel of their own (`data` left empty)."""
    fitted = fit_image(parcel.unpack(), filename, limit)
    return dataclasses.replace(fitted, data=b""), Parcel.pack(fitted.data)


def fit_image(data: bytes, filename: str, limit: int) -> Fitted:
    """The picture as is when it fits `limit` bytes, else a JPEG re-encode or a smaller JPEG."""
    if len(data) <= limit:
        return Fitted(data, filename)
    try:
        # open_picture sets Pillow's pixel bound: a picture past twice the bound is refused
        # (DecompressionBombError) rather than decoded into gigabytes of memory.
        with open_picture(data) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise CannotFit(filename)
            picture = _flatten(opened)
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, ValueError) as exc:
        raise CannotFit(filename) from exc
    stem = filename.rsplit(".", 1)[0] or "image"
    encoded = b""
    for quality in _QUALITIES:
        encoded = _jpeg(picture, quality)
        if len(encoded) <= limit:
            return Fitted(encoded, f"{stem}.jpg", texts.reencoded(limit))
    width, height = picture.size
    while width > _MIN_SIDE and height > _MIN_SIDE:
        # Bytes scale roughly with the area: shrink both sides by the root of the excess.
        scale = min(0.9, (limit / len(encoded)) ** 0.5 * 0.95)
        width, height = max(int(width * scale), _MIN_SIDE), max(int(height * scale), _MIN_SIDE)
        encoded = _jpeg(picture.resize((width, height), Image.Resampling.LANCZOS), _QUALITIES[-1])
        if len(encoded) <= limit:
            return Fitted(encoded, f"{stem}.jpg", texts.downscaled(width, height, limit))
    raise CannotFit(filename)


def _flatten(picture: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white (JPEG has no alpha)."""
    if picture.mode in ("RGBA", "LA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return picture.convert("RGB")


def _jpeg(picture: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()

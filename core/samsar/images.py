"""Image formats by magic bytes, `data:` URLs for input images, reading generated images."""

from __future__ import annotations

import base64
import binascii
import logging

from core.models import GeneratedImage, InputImage
from core.pictures import Verdict, check_picture

log = logging.getLogger(__name__)

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIFS = (b"GIF87a", b"GIF89a")


def detect_image_format(data: bytes) -> tuple[str, str] | None:
    """(mime, extension) of PNG, JPEG, WebP or GIF bytes by their magic numbers; None otherwise."""
    if data.startswith(_PNG):
        return "image/png", "png"
    if data.startswith(_JPEG):
        return "image/jpeg", "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    if data.startswith(_GIFS):
        return "image/gif", "gif"
    return None


def data_url(image: InputImage) -> str:
    """A `data:<mime>;base64,...` URL; the mime comes from the bytes when they are recognised."""
    return f"{data_url_start(image)}{base64.b64encode(image.data).decode('ascii')}"


def data_url_start(image: InputImage) -> str:
    """The `data:<mime>;base64,` that `data_url` puts before the picture's base64."""
    detected = detect_image_format(image.data)
    mime = detected[0] if detected else image.mime
    return f"data:{mime};base64,"


def read_generated_image(b64: str, revised_prompt: str | None = None) -> GeneratedImage | None:
    """An `image_generation_call` result decoded and decode-checked; None when it is no picture.

    CPU-bound (base64 and a full decode): call it off the event loop.
    """
    data = decode_base64(b64)
    return None if data is None else checked_image(data, revised_prompt)


def decode_base64(b64: str) -> bytes | None:
    """A picture's base64 (whitespace ignored) decoded; None, logged, when it is not base64."""
    try:
        # As b64decode(validate=True) does, without its copy of the text to bytes first:
        # a2b_base64 reads an ASCII str where it lies (60 MB less for a 4096² picture).
        return binascii.a2b_base64("".join(b64.split()), strict_mode=True)
    except (binascii.Error, ValueError):
        log.warning("generated image is not base64", extra={"chars": len(b64)})
        return None


def checked_image(data: bytes, revised_prompt: str | None = None) -> GeneratedImage | None:
    """Decoded bytes as a GeneratedImage when they are a PNG, JPEG, WebP or GIF that decodes;
    None, logged, otherwise. CPU-bound (a full decode): call it off the event loop."""
    detected = detect_image_format(data)
    if detected is None:
        log.warning("generated image is no PNG, JPEG, WebP or GIF", extra={"bytes": len(data)})
        return None
    verdict = check_picture(data)
    if verdict is Verdict.BROKEN:
        log.warning("generated image does not decode", extra={"bytes": len(data)})
        return None
    if verdict is Verdict.UNCHECKED:
        log.info("generated image too large to decode-check, kept", extra={"bytes": len(data)})
    mime, extension = detected
    return GeneratedImage(data=data, mime=mime, extension=extension, revised_prompt=revised_prompt)

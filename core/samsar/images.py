"""Image formats by magic bytes, `data:` URLs for input images, decoding of generated images."""

from __future__ import annotations

import base64
import binascii

from core.errors import MalformedResponse
from core.models import GeneratedImage, InputImage

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
    detected = detect_image_format(image.data)
    mime = detected[0] if detected else image.mime
    return f"data:{mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def decode_generated_image(
    b64: str,
    revised_prompt: str | None = None,
    *,
    status: int | None = None,
    request_id: str | None = None,
) -> GeneratedImage:
    """Strictly decode an `image_generation_call` result; MalformedResponse when unreadable."""
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse(
            "image_generation_call result is not valid base64",
            status=status,
            request_id=request_id,
        ) from exc
    detected = detect_image_format(data)
    if detected is None:
        raise MalformedResponse(
            "image_generation_call result is not a PNG, JPEG, WebP or GIF image",
            status=status,
            request_id=request_id,
        )
    mime, extension = detected
    return GeneratedImage(data=data, mime=mime, extension=extension, revised_prompt=revised_prompt)

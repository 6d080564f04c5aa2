"""Reading a completion body leniently: the answer's text and pictures are kept, whatever else
the body holds; what is not understood is skipped and logged, never the cause of a lost answer.

The body is an OpenAI Responses-style object (AssistantCompletionResponse in samsar-js):
`id`, `output_text`, and `output[]` items, of which `message` (text parts) and
`image_generation_call` (`result`: a base64 picture, `revised_prompt`, `status`) matter here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.models import GeneratedImage, ImageProblem
from core.offload import Parcel
from core.samsar.images import checked_image, decode_base64

log = logging.getLogger(__name__)

IGNORED_TYPES = frozenset({"reasoning"})
"""Output items that are no part of what a member reads."""
_MAX_NOTED = 10


@dataclass(frozen=True, slots=True)
class ImageCall:
    """One `image_generation_call`: its base64 `result` when it is a non-empty string;
    `odd` when a result came that is no string at all."""

    result: str | None
    revised_prompt: str | None
    status: str | None
    odd: bool = False


@dataclass(frozen=True, slots=True)
class ReadCompletion:
    """What a completion body says: id, text, image calls, and what was skipped (for logs)."""

    response_id: str | None
    text: str
    image_calls: tuple[ImageCall, ...]
    skipped: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """Neither text nor any image call."""
        return not self.text and not self.image_calls


def read_completion(body: dict[str, Any], *, log_skipped: bool = True) -> ReadCompletion:
    """Every usable part of a 2xx completion body; never raises on an odd shape."""
    skipped: list[str] = []
    output = body.get("output")
    if output is not None and not isinstance(output, list):
        skipped.append(f"output:{type(output).__name__}")
        output = None
    parts: list[str] = []
    calls: list[ImageCall] = []
    for index, item in enumerate(output or ()):
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            kind = None
        if kind == "message":
            parts.extend(_message_text(item, index, skipped))
        elif kind == "image_generation_call":
            calls.append(_image_call(item, index, skipped))
        elif kind not in IGNORED_TYPES:
            skipped.append(f"output[{index}]:{_name(kind, item)}")
    output_text = _string(body.get("output_text"), "output_text", skipped)
    response_id = _string(body.get("id"), "id", skipped)
    read = ReadCompletion(
        response_id=response_id or None,
        text=output_text or "".join(parts),
        image_calls=tuple(calls),
        skipped=tuple(skipped),
    )
    if skipped and log_skipped:
        note_skipped(read)
    return read


def note_skipped(read: ReadCompletion) -> None:
    """One log line for the parts of a completion that were not understood."""
    skipped = list(read.skipped)
    log.warning(
        "completion parts skipped",
        extra={"skipped": skipped[:_MAX_NOTED], "skipped_count": len(skipped)},
    )


def reject_constant(name: str) -> float:
    """For `json.loads`: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON")


Parcelled = tuple[ReadCompletion, tuple[tuple[GeneratedImage, Parcel], ...], list[ImageProblem]]
"""What a worker process makes of a completion body: the read body (its image calls without
their base64), each picture with its bytes in a parcel (`data` left empty), and the problems."""


def decode_completion_file(path: str) -> Parcelled | str:
    """For a worker process: the completion body kept in the file `path`, parsed and read, its
    pictures decoded and checked, each sent back as a parcel; or what is wrong with the body.

    A worker's logs go nowhere: the caller logs what the result says. Each big string is let
    go as soon as it has been used, so that the worker holds less than three times a picture.
    """
    body = _load(path)
    if isinstance(body, str):
        return body
    read = read_completion(body, log_skipped=False)
    del body  # the base64 now lives in the calls alone, and goes as each is decoded
    calls: list[ImageCall | None] = list(read.image_calls)
    light = tuple(dataclasses.replace(call, result=None) for call in read.image_calls)
    read = dataclasses.replace(read, image_calls=light)
    parcels: list[tuple[GeneratedImage, Parcel]] = []
    problems: list[ImageProblem] = []
    for picture in each_picture(calls):
        if isinstance(picture, ImageProblem):
            problems.append(picture)
        else:
            parcels.append((dataclasses.replace(picture, data=b""), Parcel.pack(picture.data)))
        del picture  # not held while the next one is decoded
    return read, tuple(parcels), problems


def _load(path: str) -> dict[str, Any] | str:
    """The JSON object in the file; or what is wrong with it."""
    try:
        body = json.loads(_text(path), parse_constant=reject_constant)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return "response body is not JSON"
    if not isinstance(body, dict):
        return "response body is not a JSON object"
    return body


def _text(path: str) -> str:
    """The file decoded as json.loads decodes bytes; the bytes are let go on return."""
    data = Path(path).read_bytes()
    return data.decode(json.detect_encoding(data), "surrogatepass")


def pictures(calls: tuple[ImageCall, ...]) -> tuple[tuple[GeneratedImage, ...], list[ImageProblem]]:
    """The calls' pictures, decoded and checked, and a problem for each one that is missing.

    CPU-bound: call it off the event loop.
    """
    images: list[GeneratedImage] = []
    problems: list[ImageProblem] = []
    for picture in each_picture(list(calls)):
        if isinstance(picture, ImageProblem):
            problems.append(picture)
        else:
            images.append(picture)
    return tuple(images), problems


def each_picture(calls: list[ImageCall | None]) -> Iterator[GeneratedImage | ImageProblem]:
    """Each call's picture decoded and checked, or the problem of a missing one, in order.

    Each call is taken out of `calls` as it is read, and its base64 let go once decoded,
    before the picture's pixels are: a caller holding no other reference to the calls never
    holds a picture's base64 and its pixels at once.
    """
    for index in range(len(calls)):
        yield _picture(calls, index)


def _picture(calls: list[ImageCall | None], index: int) -> GeneratedImage | ImageProblem:
    call, calls[index] = calls[index], None
    assert call is not None, "each call is read once"
    if call.odd:
        return ImageProblem.UNREADABLE
    if call.result is None:
        log.warning("image not made", extra={"image_status": call.status})
        return ImageProblem.NOT_MADE
    data, revised = decode_base64(call.result), call.revised_prompt
    del call  # with it, the base64's last reference when `calls` held the only other one
    image = checked_image(data, revised) if data is not None else None
    return image if image is not None else ImageProblem.UNREADABLE


def _message_text(item: dict[str, Any], index: int, skipped: list[str]) -> list[str]:
    content = item.get("content")
    if content is None:
        return []
    if not isinstance(content, list):
        skipped.append(f"output[{index}].content:{type(content).__name__}")
        return []
    texts = []
    for number, part in enumerate(content):
        text = part.get("text") if isinstance(part, dict) else None
        if isinstance(text, str):
            texts.append(text)
        elif not isinstance(part, dict) or text is not None:
            skipped.append(f"output[{index}].content[{number}]")
    return texts


def _image_call(item: dict[str, Any], index: int, skipped: list[str]) -> ImageCall:
    result = item.get("result")
    odd = result is not None and not isinstance(result, str)
    if odd:
        skipped.append(f"output[{index}].result:{type(result).__name__}")
    revised = item.get("revised_prompt")
    status = item.get("status")
    return ImageCall(
        result=result if isinstance(result, str) and result else None,
        revised_prompt=revised if isinstance(revised, str) and revised.strip() else None,
        status=status[:40] if isinstance(status, str) else None,
        odd=odd,
    )


def _string(value: object, name: str, skipped: list[str]) -> str | None:
    if value is None or isinstance(value, str):
        return value
    skipped.append(f"{name}:{type(value).__name__}")
    return None


def _name(kind: str | None, item: object) -> str:
    """A short, safe label of an item nobody asked for: its type, never its content."""
    return kind[:40] if kind is not None else type(item).__name__

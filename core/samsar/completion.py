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
from dataclasses import dataclass
from typing import Any

from core.models import GeneratedImage, ImageProblem
from core.samsar.images import read_generated_image

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


Decoded = tuple[ReadCompletion, tuple[GeneratedImage, ...], list[ImageProblem]]


def decode_completion_file(path: str) -> Decoded | str:
    """`decode_completion` of a body kept in a file (for a worker process)."""
    with open(path, "rb") as file:
        return decode_completion(file.read())


def decode_completion(content: bytes | bytearray) -> Decoded | str:
    """A completion body's bytes, parsed, read and its pictures decoded and checked, in one
    go (for a worker process: nothing here logs; the caller logs what the result says); or
    what is wrong with the body. The image calls come back without their base64."""
    try:
        body = json.loads(content, parse_constant=reject_constant)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return "response body is not JSON"
    if not isinstance(body, dict):
        return "response body is not a JSON object"
    read = read_completion(body, log_skipped=False)
    images, problems = pictures(read.image_calls)
    light = tuple(dataclasses.replace(call, result=None) for call in read.image_calls)
    return dataclasses.replace(read, image_calls=light), images, problems


def pictures(calls: tuple[ImageCall, ...]) -> tuple[tuple[GeneratedImage, ...], list[ImageProblem]]:
    """The calls' pictures, decoded and checked, and a problem for each one that is missing.

    CPU-bound: call it off the event loop.
    """
    images: list[GeneratedImage] = []
    problems: list[ImageProblem] = []
    for call in calls:
        if call.odd:
            problems.append(ImageProblem.UNREADABLE)
            continue
        if call.result is None:
            log.warning("image not made", extra={"image_status": call.status})
            problems.append(ImageProblem.NOT_MADE)
            continue
        image = read_generated_image(call.result, call.revised_prompt)
        if image is None:
            problems.append(ImageProblem.UNREADABLE)
        else:
            images.append(image)
    return tuple(images), problems


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

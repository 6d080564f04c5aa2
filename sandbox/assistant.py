"""The sandbox assistant completion: input validation, directives, image tool, billing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.drawing import FORMATS, ImageFormat, draw, parse_size, sniff_format
from sandbox.replies import Directives, long_text, reply_text
from sandbox.routes import Call, require_user
from sandbox.state import ApiError, HistoryEntry, Session, new_id

ROLES = ("user", "developer", "system", "assistant")
QUALITIES = ("auto", "low", "medium", "high")
MODEL = "sandbox-assistant"
_TEXT_TYPES = ("input_text", "text", "output_text")
_IMAGE_TYPES = ("input_image", "image_url", "image")
_DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,(.*)$", re.IGNORECASE | re.DOTALL)
_PICTURE = re.compile(
    r"\b(draw|imagine|picture|image of|generate an image|paint|sketch|edit|make it)",
    re.IGNORECASE,
)


@dataclass
class InputMessage:
    """One validated input message: role, text parts, decoded images."""

    role: str
    texts: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text parts joined by newlines."""
        return "\n".join(self.texts)


@dataclass(frozen=True)
class ImagePlan:
    """The image the completion will produce."""

    size: str
    width: int
    height: int
    fmt: ImageFormat
    quality: str
    action: str = "auto"  # "generate": a new picture; "edit": the last one changed


def _decode_image(url: object, where: str) -> bytes:
    """The bytes of a `data:image/…;base64,…` URL holding a real png/jpeg/webp/gif, else 400."""
    if isinstance(url, Mapping):
        url = url.get("url")
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise ApiError(400, f"{where}.image_url must be a data:image/…;base64 URL")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", match.group(1)), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"{where}.image_url is not valid base64") from exc
    if sniff_format(data) is None:
        raise ApiError(400, f"{where}.image_url is not a png, jpeg, webp or gif image")
    return data


def _message(raw: object, where: str) -> InputMessage:
    """Validate one `{role, content}` message."""
    if not isinstance(raw, Mapping):
        raise ApiError(400, f"{where} must be an object with role and content")
    role = raw.get("role")
    if role not in ROLES:
        raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}")
    message = InputMessage(str(role))
    content = raw.get("content")
    if isinstance(content, str):
        message.texts.append(content)
        return message
    if not isinstance(content, list) or not content:
        raise ApiError(400, f"{where}.content must be a string or a non-empty list")
    for index, item in enumerate(content):
        spot = f"{where}.content[{index}]"
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind in _TEXT_TYPES and isinstance(item, Mapping):
            if not isinstance(item.get("text"), str):
                raise ApiError(400, f"{spot}.text is required (a string)")
            message.texts.append(item["text"])
        elif kind in _IMAGE_TYPES and isinstance(item, Mapping):
            if role != "user":
                raise ApiError(400, f"{spot}: only user messages may carry images")
            message.images.append(_decode_image(item.get("image_url", item.get("url")), spot))
        else:
            raise ApiError(400, f"{spot}.type must be input_text or input_image")
    return message


def parse_input(body: Mapping[str, Any]) -> list[InputMessage]:
    """Validate `input` (a string, a message, a list of messages or of content items)."""
    raw = next((body[k] for k in ("input", "message", "messages") if k in body), None)
    if isinstance(raw, str):
        if not raw.strip():
            raise ApiError(400, "input must not be empty")
        return [InputMessage("user", [raw])]
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "input is required: a string or a non-empty list of messages")
    if all(isinstance(i, Mapping) and "role" not in i and "type" in i for i in raw):
        return [_message({"role": "user", "content": raw}, "input")]
    return [_message(item, f"input[{index}]") for index, item in enumerate(raw)]


def _image_plan(body: Mapping[str, Any], user_text: str) -> ImagePlan | None:
    """Validate tools/tool_choice; the image to make, or None when no image is due."""
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ApiError(400, "tools must be a list")
    kinds = []
    for index, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("type"), str):
            raise ApiError(400, f"tools[{index}] must be an object with a type")
        kinds.append(tool["type"])
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, Mapping):
        forced = choice.get("type")
        if forced not in kinds:
            raise ApiError(400, f"tool_choice forces {forced!r} but tools has no such tool")
    elif choice not in ("auto", "none", "required"):
        raise ApiError(400, "tool_choice must be auto, none, required or {type: …}")
    elif choice == "required" and not kinds:
        raise ApiError(400, "tool_choice is required but no tools were given")
    if "image_generation" not in kinds or choice == "none":
        return None
    tool = next(t for t in tools or [] if t["type"] == "image_generation")
    plan = _validate_image_tool(tool)
    if isinstance(choice, Mapping) and choice.get("type") != "image_generation":
        return None
    if choice == "auto" and not _PICTURE.search(user_text):
        return None
    return plan


ACTIONS = ("auto", "generate", "edit")


def _validate_image_tool(tool: Mapping[str, Any]) -> ImagePlan:
    """The size/format/quality of an image_generation tool, else 400."""
    size = tool.get("size", "auto")
    fmt = tool.get("output_format", tool.get("format", "png"))
    quality = tool.get("quality", "auto")
    try:
        width, height = parse_size(size) if isinstance(size, str) else parse_size("?")
    except ValueError as exc:
        raise ApiError(400, f"image_generation size: {exc}") from exc
    if fmt not in FORMATS:
        raise ApiError(400, f"image_generation format must be one of {', '.join(FORMATS)}")
    if quality not in QUALITIES:
        raise ApiError(400, f"image_generation quality must be one of {', '.join(QUALITIES)}")
    action = tool.get("action", "auto")
    if action not in ACTIONS:
        raise ApiError(400, f"image_generation action must be one of {', '.join(ACTIONS)}")
    return ImagePlan(f"{width}x{height}", width, height, fmt, str(quality), str(action))


def _owned_session(call: Call, owner: tuple[str, str]) -> Session:
    """The body's session, 404 if unknown, 403 if another external user owns it."""
    body = call.body
    session_id = body.get("session_id", body.get("sessionId", body.get("id")))
    if not isinstance(session_id, str) or not session_id:
        raise ApiError(400, "session_id is required")
    session = call.state.session(session_id)
    if session is None:
        raise ApiError(404, f"session not found: {session_id}")
    if session.owner != owner:
        raise ApiError(403, "this session belongs to another external user")
    return session


def _check_options(body: Mapping[str, Any], session: Session) -> str | None:
    """Validate previous_response_id and max_output_tokens; returns the former."""
    previous = body.get("previous_response_id", body.get("previousResponseId"))
    if previous is not None and previous not in session.response_ids:
        raise ApiError(400, f"previous_response_id {previous!r} is not a response of this session")
    limit = body.get("max_output_tokens", body.get("maxOutputTokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ApiError(400, "max_output_tokens must be a positive integer")
    return previous if isinstance(previous, str) else None


async def completion(call: Call) -> dict[str, Any]:
    """POST external_users/assistant/completion: a deterministic Responses-style answer."""
    state, config = call.state, call.state.config
    user = require_user(call)
    session = _owned_session(call, user.key)
    messages = parse_input(call.body)
    previous = _check_options(call.body, session)
    users_said = [m for m in messages if m.role == "user"]
    directives = Directives.parse(users_said[-1].text if users_said else "")
    plan = _image_plan(call.body, directives.text)
    cost = config.text_cost + (config.image_cost if plan else 0)
    if user.credits < cost:
        state.charge(user, cost)  # raises the 402, charging nothing
    if directives.slow:
        await asyncio.sleep(directives.slow)
    attached = [image for m in users_said for image in m.images]
    base = attached[-1] if attached else session.last_image
    if plan is not None and plan.action == "generate":
        base = None  # a fresh picture, whatever came before
    elif plan is not None and plan.action == "edit" and base is None:
        raise ApiError(400, "image_generation action edit: there is no image to edit")
    image: bytes | None = None
    if plan is not None:
        prompt = directives.text or "an untitled picture"
        try:
            image = await asyncio.to_thread(
                draw, prompt, plan.size, plan.fmt, base=base, noise=directives.noise
            )
        except OSError as exc:
            raise ApiError(400, "the input image could not be decoded") from exc
    state.charge(user, cost)
    call.charged = cost
    return _commit(call, session, messages, directives, plan, image, base, previous)


def _commit(
    call: Call,
    session: Session,
    messages: list[InputMessage],
    directives: Directives,
    plan: ImagePlan | None,
    image: bytes | None,
    base: bytes | None,
    previous: str | None,
) -> dict[str, Any]:
    """Record the turn in the session and build the response body."""
    state, user_key = call.state, call.user_key
    user = state.users[user_key] if user_key else None
    session.turns += 1
    response_id = new_id("resp")
    earlier = next((h.text for h in reversed(session.history) if h.role == "user"), None)
    for message in messages:
        session.history.append(HistoryEntry(message.role, message.text, len(message.images)))
    output: list[dict[str, Any]] = []
    edited = plan is not None and base is not None and not directives.noise
    if plan is not None and image is not None:
        session.last_image = image
        session.images_generated += 1
        session.pictures.append((plan.size, plan.quality, plan.action, edited))
        verb = "Edited the previous image" if edited else "A sandbox illustration"
        output.append(
            {
                "id": new_id("ig"),
                "type": "image_generation_call",
                "status": "completed",
                "revised_prompt": f"{verb}: {directives.text or 'an untitled picture'}",
                "size": plan.size,
                "output_format": plan.fmt,
                "quality": plan.quality,
                "result": base64.b64encode(image).decode("ascii"),
            }
        )
    if directives.long is not None:
        text = long_text(session.turns, directives.long)
    else:
        persona = state.effective_prompt(user) if user else None
        notes = [(m.role, m.text) for m in messages if m.role in ("developer", "system")]
        images_in = sum(len(m.images) for m in messages)
        picture = f"{plan.size} {plan.fmt}{', edited' if edited else ''}" if plan else None
        text = reply_text(
            session.turns, directives.text, persona, notes, images_in, picture, earlier
        )
    session.history.append(HistoryEntry("assistant", text, response_id=response_id))
    session.response_ids.append(response_id)
    output.append(
        {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    )
    input_tokens = sum(len(m.text) for m in messages) // 4 + 1
    output_tokens = len(text) // 4 + 1
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": MODEL,
        "session_id": session.session_id,
        "previous_response_id": previous,
        "output": output,
        "output_text": text,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }

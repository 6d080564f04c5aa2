"""What the fake Discord refuses, the way Discord does: form errors, sizes, command shapes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MAX_CONTENT = 2000
MAX_FILES = 10
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


class Refusal(Exception):
    """An error answer: HTTP status, Discord JSON error code and message."""

    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        """The JSON error body Discord sends."""
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return json_response(body, status=self.status)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with Discord's exact content type (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def form_error(field_name: str, code: str, message: str) -> Refusal:
    """A 400 Invalid Form Body naming one field."""
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return Refusal(400, 50035, "Invalid Form Body", errors)


@dataclass
class Body:
    """A request body: the JSON (or `payload_json`) and the uploaded `files[n]`."""

    json: dict[str, Any]
    files: dict[int, tuple[str, bytes, str]] = field(default_factory=dict)  # n → name, bytes, mime


async def read_body(request: web.Request) -> Body:
    """JSON, or multipart with `payload_json` and `files[n]` parts (400 on anything else)."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        raw = form.get("payload_json")
        if not isinstance(raw, str):
            raise form_error("payload_json", "BASE_TYPE_REQUIRED", "This field is required")
        files: dict[int, tuple[str, bytes, str]] = {}
        for name, value in form.items():
            match = re.fullmatch(r"files\[(\d+)\]", name)
            if match is None or isinstance(value, str | bytes | bytearray):
                continue
            data = value.file.read()
            files[int(match.group(1))] = (value.filename, data, value.content_type)
        return Body(json.loads(raw), files)
    if not request.can_read_body:
        return Body({})
    try:
        data = await request.json()
    except ValueError as exc:
        raise Refusal(400, 50109, "The request body contains invalid JSON.") from exc
    if not isinstance(data, dict):
        raise Refusal(400, 50109, "The request body contains invalid JSON.")
    return Body(data)


def check_message(body: Body, *, upload_limit: int, creating: bool) -> None:
    """Refuse what Discord refuses in a message create or edit."""
    content = body.json.get("content")
    if content is not None and not isinstance(content, str):
        raise form_error("content", "STRING_TYPE_CONVERT", "Could not interpret as string.")
    if content is not None and len(content) > MAX_CONTENT:
        raise form_error(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
    if len(body.files) > MAX_FILES:
        raise form_error(
            "files", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length."
        )
    # The limit holds for the files of one request together, not for each one alone.
    if sum(len(data) for _, data, _ in body.files.values()) > upload_limit:
        raise Refusal(413, 40005, "Request entity too large")
    declared = {int(a["id"]) for a in body.json.get("attachments", []) if "id" in a}
    if body.files and not set(body.files) <= declared:
        raise form_error("attachments", "ATTACHMENT_NOT_FOUND", "Attachment not found in files.")
    mentions = body.json.get("allowed_mentions")
    if mentions is not None and not isinstance(mentions, dict):
        raise form_error("allowed_mentions", "DICT_TYPE_CONVERT", "Only dictionaries allowed.")
    if "components" in body.json:
        check_components(body.json["components"])
    if creating and not content and not body.files and not body.json.get("embeds"):
        raise Refusal(400, 50006, "Cannot send an empty message")


ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
LINK = 5  # the button style that opens a URL (it has no custom id)


def check_components(rows: object, *, form: bool = False) -> None:
    """Refuse components Discord refuses: at most five action rows; a row holds up to five
    buttons or one select (a form: one text input); a button has a style and a label, a
    custom id of at most 100 characters, or for a link button a URL and no custom id; a
    select has 1-25 options; every custom id in a message is unique."""
    if not isinstance(rows, list) or len(rows) > 5:
        raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        where = f"components.{r}"
        inner = row.get("components") if isinstance(row, dict) else None
        if row.get("type") != ACTION_ROW or not isinstance(inner, list) or not 1 <= len(inner) <= 5:
            raise form_error(where, "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Invalid action row")
        kinds = {item.get("type") for item in inner}
        if (kinds & {STRING_SELECT, TEXT_INPUT}) and len(inner) != 1:
            raise form_error(where, "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "A select fills its row")
        allowed = {TEXT_INPUT} if form else {BUTTON, STRING_SELECT}
        for c, item in enumerate(inner):
            spot = f"{where}.components.{c}"
            if item.get("type") not in allowed:
                raise form_error(spot, "UNION_TYPE_CHOICES", "Value of field type is not allowed")
            custom = item.get("custom_id")
            if item.get("type") == BUTTON and item.get("style") == LINK:
                url = str(item.get("url", ""))
                if custom is not None or not url.startswith(("https://", "http://", "discord://")):
                    raise form_error(spot, "BUTTON_COMPONENT_INVALID_URL", "Invalid URL")
            elif not isinstance(custom, str) or not 1 <= len(custom) <= 100 or custom in seen:
                raise form_error(f"{spot}.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", "Bad id")
            else:
                seen.add(custom)
            if item.get("type") == BUTTON:
                if item.get("style") not in (1, 2, 3, 4, 5):
                    raise form_error(f"{spot}.style", "BASE_TYPE_CHOICES", "Invalid style")
                if not item.get("label") and not item.get("emoji"):
                    raise form_error(spot, "BUTTON_COMPONENT_MISSING_LABEL", "Missing label")
                if len(str(item.get("label") or "")) > 80:
                    raise form_error(f"{spot}.label", "BASE_TYPE_MAX_LENGTH", "80 or fewer")
            if item.get("type") == STRING_SELECT:
                options = item.get("options")
                if not isinstance(options, list) or not 1 <= len(options) <= 25:
                    raise form_error(f"{spot}.options", "BASE_TYPE_BAD_LENGTH", "1-25 options")
            label = str(item.get("label", ""))
            if item.get("type") == TEXT_INPUT and (
                item.get("style") not in (1, 2) or not 1 <= len(label) <= 45
            ):
                raise form_error(spot, "BASE_TYPE_BAD_LENGTH", "Invalid text input")


def check_commands(commands: object) -> list[dict[str, Any]]:
    """Refuse a bulk command overwrite Discord would refuse."""
    if not isinstance(commands, list):
        raise Refusal(400, 50109, "The request body contains invalid JSON.")
    names = set()
    for index, command in enumerate(commands):
        name = command.get("name", "")
        if not _COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
        if name in names:
            raise form_error(f"{index}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate")
        names.add(name)
        for key, allowed in (("integration_types", {0, 1}), ("contexts", {0, 1, 2})):
            value = command.get(key)
            if value is not None and (not isinstance(value, list) or not set(value) <= allowed):
                raise form_error(f"{index}.{key}", "BASE_TYPE_CHOICES", "Value is not allowed")
        _check_options(command.get("options", []), f"{index}")
        description = command.get("description", "")
        if command.get("type", 1) == 1 and not 1 <= len(description) <= 100:
            raise form_error(f"{index}.description", "BASE_TYPE_BAD_LENGTH", "1-100 characters")
    return commands


def _check_options(options: list[dict[str, Any]], where: str) -> None:
    optional_seen = False
    for index, option in enumerate(options):
        spot = f"{where}.options.{index}"
        name = option.get("name", "")
        if not _COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(f"{spot}.name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
        if not 1 <= len(option.get("description", "")) <= 100:
            raise form_error(f"{spot}.description", "BASE_TYPE_BAD_LENGTH", "1-100 characters")
        if len(option.get("choices") or []) > 25:
            raise form_error(f"{spot}.choices", "BASE_TYPE_MAX_LENGTH", "25 or fewer")
        if option.get("type") in (1, 2):
            _check_options(option.get("options", []), spot)
            continue
        if option.get("required"):
            if optional_seen:
                raise form_error(spot, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Order")
        else:
            optional_seen = True


BODY = web.RequestKey("body", Body)
"""Where the middleware leaves the parsed body for the handler."""

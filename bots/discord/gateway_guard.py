"""The gateway's door: messages and interactions checked before discord.py parses them.

discord.py parses a dispatch inside its gateway loop, where one exception (a missing field, an
id that is not a number) ends the connection, and it keeps odd field types as they came, for
a handler to trip on later. Here a message whose fields the bot relies on are off-shape is
ignored, and an interaction is answered whatever its shape: when it cannot be read, with a
short private sentence sent straight to Discord's callback route (or an empty list of
suggestions for an autocomplete). Each costs one WARNING line within a budget; none ends
the connection. An interaction without a usable id and token cannot be answered by anyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import discord
from discord.http import Route

from bots.discord import texts
from bots.log_budget import LogBudget

log = logging.getLogger(__name__)

Parser = Callable[[Any], None]
PING, COMMAND, COMPONENT, AUTOCOMPLETE, MODAL = 1, 2, 3, 4, 5
_PONG, _MESSAGE, _SUGGESTIONS = 1, 4, 8
_EPHEMERAL = 1 << 6
_MAX_TOKEN = 1_000
_MAX_CONTENT = 4_000  # what Discord lets a member write
_MAX_TEXT = 1_000  # names, custom ids, file names and such


class OffShape(Exception):
    """A field the bot relies on is missing or not what Discord sends; `field` names it."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class GatewayGuard:
    """Wraps discord.py's MESSAGE_CREATE and INTERACTION_CREATE parsers of one client."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._budget = LogBudget(log)
        self._answers: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Put the checks in front of discord.py's parsers (before the gateway connects)."""
        # discord.py keeps its parsers in this dict, and the gateway reads them from it.
        parsers: dict[str, Parser] = self._client._connection.parsers
        parse_message, parse_interaction = parsers["MESSAGE_CREATE"], parsers["INTERACTION_CREATE"]
        parsers["MESSAGE_CREATE"] = lambda data: self._message(parse_message, data)
        parsers["INTERACTION_CREATE"] = lambda data: self._interaction(parse_interaction, data)

    def _message(self, parse: Parser, data: Any) -> None:
        try:
            check_message(data)
            parse(data)
        except OffShape as exc:
            self._budget.warn("discord message ignored", {"field": exc.field})
        except Exception as exc:  # discord.py could not read it: ignored, the connection lives
            self._budget.warn("discord message ignored", {"error": type(exc).__name__})

    def _interaction(self, parse: Parser, data: Any) -> None:
        target = answerable(data)
        if target is None:
            self._budget.warn("discord interaction ignored", {"field": "id or token"})
            return
        try:
            check_interaction(data)
            parse(data)
            return
        except OffShape as exc:
            fields: dict[str, object] = {"field": exc.field}
        except Exception as exc:  # discord.py could not read it: still answered below
            fields = {"error": type(exc).__name__}
        self._budget.warn("discord interaction answered unread", {**fields, "id": target[0]})
        answer = answer_unparsed(self._client, *target, texts.UNREADABLE_INTERACTION)
        task = asyncio.get_running_loop().create_task(answer)
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)


async def answer_unparsed(
    client: discord.Client, interaction_id: str, token: str, kind: int, text: str
) -> None:
    """Answer an interaction that discord.py is not given, through the callback route: a
    private `text` (an autocomplete: no suggestions; a ping: a pong)."""
    if kind == PING:
        payload: dict[str, Any] = {"type": _PONG}
    elif kind == AUTOCOMPLETE:
        payload = {"type": _SUGGESTIONS, "data": {"choices": []}}
    else:
        data = {"content": text, "flags": _EPHEMERAL, "allowed_mentions": {"parse": []}}
        payload = {"type": _MESSAGE, "data": data}
    route = Route(
        "POST",
        "/interactions/{interaction_id}/{interaction_token}/callback",
        interaction_id=interaction_id,
        interaction_token=token,
    )
    try:
        await client.http.request(route, json=payload)
    except (discord.HTTPException, OSError) as exc:
        log.info("unparsed interaction not answered", extra={"error": type(exc).__name__})


def answerable(data: Any) -> tuple[str, str, int] | None:
    """(id, token, type) of an interaction, when they are usable to answer it."""
    if not isinstance(data, Mapping):
        return None
    interaction_id, token, kind = data.get("id"), data.get("token"), data.get("type")
    if not _is_snowflake(interaction_id) or not isinstance(token, str):
        return None
    if not 0 < len(token) <= _MAX_TOKEN or not (token.isascii() and token.isprintable()):
        return None
    if "/" in token or "?" in token or "#" in token:
        return None
    if type(kind) is int and kind in (PING, COMMAND, COMPONENT, AUTOCOMPLETE, MODAL):
        return str(interaction_id), token, int(kind)  # `type(...) is`: True is no ping
    return str(interaction_id), token, _guess_kind(data.get("data"))


def _guess_kind(inner: object) -> int:
    """What an interaction of an unreadable type most likely is, to answer it in a way
    Discord accepts: suggestions when an option is focused, else a message."""
    if not isinstance(inner, Mapping):
        return COMMAND
    pending: list[object] = [inner]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            if node.get("focused") is True:
                return AUTOCOMPLETE
            options = node.get("options")
            if isinstance(options, list):
                pending.extend(options[:25])
    return COMMAND


def check_interaction(data: Mapping[str, Any]) -> None:
    """OffShape unless the interaction has what discord.py and the bot read."""
    kind = data.get("type")
    if type(kind) is not int or kind not in (PING, COMMAND, COMPONENT, AUTOCOMPLETE, MODAL):
        raise OffShape("type")
    _snowflake(data, "application_id", required=True)
    _int(data, "version", required=True)
    _int(data, "attachment_size_limit", required=True)
    _snowflake(data, "guild_id")
    _snowflake(data, "channel_id")
    _digits(data, "app_permissions")
    if data.get("guild_id") is not None:
        member = _object(data, "member", required=True)
        _digits(member, "permissions")
        _check_user(_object(member, "user", required=True))
    elif kind != PING:
        _check_user(_object(data, "user", required=True))
    if "channel" in data:
        channel = _object(data, "channel", required=True)
        _snowflake(channel, "id", required=True)
        _int(channel, "type", required=True)
    for name, kind_of in (("entitlements", list), ("authorizing_integration_owners", dict)):
        if data.get(name) is not None and not isinstance(data[name], kind_of):
            raise OffShape(name)
    _check_interaction_data(kind, data)


def _check_interaction_data(kind: int, data: Mapping[str, Any]) -> None:
    if kind in (COMMAND, AUTOCOMPLETE):
        inner = _object(data, "data", required=True)
        _text(inner, "name", required=True)
        _int(inner, "type")
        if inner.get("options") is not None and not isinstance(inner["options"], list):
            raise OffShape("data.options")
        _object(inner, "resolved")
        _snowflake(inner, "guild_id")
    elif kind in (COMPONENT, MODAL):
        inner = _object(data, "data", required=True)
        _text(inner, "custom_id", required=True)
        if kind == COMPONENT:
            _int(inner, "component_type", required=True)
            _object(data, "message")
        elif not isinstance(inner.get("components"), list):
            raise OffShape("data.components")


def check_message(data: Any) -> None:
    """OffShape unless the message has what discord.py and the bot read."""
    if not isinstance(data, Mapping):
        raise OffShape("message")
    _snowflake(data, "id", required=True)
    _snowflake(data, "channel_id", required=True)
    _snowflake(data, "guild_id")
    _snowflake(data, "webhook_id")
    _int(data, "type", required=True)
    _int(data, "flags")
    content = data.get("content")
    if not isinstance(content, str) or len(content) > _MAX_CONTENT:
        raise OffShape("content")
    _check_user(_object(data, "author", required=True))
    if data.get("guild_id") is not None:
        _object(data, "member")
    for name in ("mentions", "attachments"):  # always sent, if only empty
        if not isinstance(data.get(name), list):
            raise OffShape(name)
    for name in ("embeds", "mention_roles"):
        if not isinstance(data.get(name, []), list):
            raise OffShape(name)
    for user in data.get("mentions", []):
        _check_user(user if isinstance(user, Mapping) else {})
    for attachment in data.get("attachments", []):
        _check_attachment(attachment)


def _check_user(user: Mapping[str, Any]) -> None:
    _snowflake(user, "id", required=True)
    _text(user, "username", required=True)
    for name in ("global_name", "avatar", "discriminator"):
        value = user.get(name)
        if value is not None and not isinstance(value, str):
            raise OffShape(f"user.{name}")
    if user.get("bot") is not None and not isinstance(user["bot"], bool):
        raise OffShape("user.bot")


def _check_attachment(attachment: object) -> None:
    if not isinstance(attachment, Mapping):
        raise OffShape("attachments")
    _snowflake(attachment, "id", required=True)
    _text(attachment, "filename", required=True)
    _text(attachment, "url", required=True)
    if not str(attachment["url"]).startswith(("https://", "http://")):
        raise OffShape("attachments.url")
    _text(attachment, "proxy_url")
    _text(attachment, "content_type")
    _int(attachment, "size", required=True)


def _object(body: Mapping[str, Any], name: str, *, required: bool = False) -> Mapping[str, Any]:
    value = body.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise OffShape(name)
    return value


def _snowflake(body: Mapping[str, Any], name: str, *, required: bool = False) -> None:
    value = body.get(name)
    if value is None and not required:
        return
    if not _is_snowflake(value):
        raise OffShape(name)


def _digits(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise OffShape(name)


def _int(body: Mapping[str, Any], name: str, *, required: bool = False) -> None:
    value = body.get(name)
    if value is None and not required:
        return
    if type(value) is not int or value < 0:
        raise OffShape(name)


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> None:
    value = body.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise OffShape(name)


def _is_snowflake(value: object) -> bool:
    text = str(value) if type(value) is int else value
    return isinstance(text, str) and text.isascii() and text.isdigit() and 0 < len(text) <= 20

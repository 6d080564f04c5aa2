"""What a Slack payload must look like before the bot acts on it.

Slack's ids and timestamps have fixed shapes; a payload whose ids, timestamps, files or
nesting are off-shape is not something Slack sends, and nothing is downloaded or billed for
it. Each check returns why a payload is off-shape, or None when the bot may use it. Only the
fields the bot (and bolt, building its context) reads are checked; the rest is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# re.ASCII: `\w`-like classes and digits only in ASCII, never Arabic-Indic digits or RTL marks.
TEAM = re.compile(r"[TE][A-Z0-9]{2,31}", re.ASCII)
ENTERPRISE = re.compile(r"E[A-Z0-9]{2,31}", re.ASCII)
USER = re.compile(r"[UW][A-Z0-9]{2,31}", re.ASCII)
CHANNEL = re.compile(r"[CDG][A-Z0-9]{2,31}", re.ASCII)
APP = re.compile(r"A[A-Z0-9]{2,31}", re.ASCII)
FILE = re.compile(r"F[A-Z0-9]{2,31}", re.ASCII)
TS = re.compile(r"[0-9]{1,12}\.[0-9]{6}", re.ASCII)
TRIGGER = re.compile(r"[0-9A-Za-z._-]{1,128}", re.ASCII)
COMMAND = re.compile(r"/[0-9a-z_-]{1,32}", re.ASCII)
URL = re.compile(r"https?://[!-~]{1,2040}", re.ASCII)  # printable ASCII, no spaces

MAX_TEXT = 40_000  # Slack's own limit on a message's text
MAX_FILES = 100
MAX_NAME = 1_000  # file names, mime types, subtypes, event types and such
MESSAGE_EVENTS = frozenset({"message", "app_mention"})
ASSISTANT_EVENTS = frozenset({"assistant_thread_started", "assistant_thread_context_changed"})
# A workspace that uninstalls the app, or revokes its tokens (distribution: bolt deletes them).
REVOCATION_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})
KNOWN_EVENTS = MESSAGE_EVENTS | ASSISTANT_EVENTS | REVOCATION_EVENTS | {"app_home_opened"}

Body = Mapping[str, Any]


class OffShape(Exception):
    """A field the bot relies on is missing or not what Slack sends; `field` names it."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def event_callback(body: Body, app_id: str | None) -> str | None:
    """Why an Events API `event_callback` is off-shape (None: it is fine). `app_id` is this
    app's id when known: another app's events are not ours."""
    try:
        _check_envelope(body, app_id)
        event = body["event"]
        if not isinstance(event, Mapping):
            raise OffShape("event")
        kind = _text(event, "type", required=True)
        if kind in MESSAGE_EVENTS:
            _check_message(body, event)
        elif kind in ASSISTANT_EVENTS:
            _check_assistant_thread(event)
        elif kind == "app_home_opened":
            _id(event, "user", USER, required=True)
            _text(event, "tab")
            _id(event, "channel", CHANNEL)
    except OffShape as exc:
        return exc.field
    return None


INTERACTIVE = frozenset({"block_actions", "view_submission"})
MAX_ACTIONS = 25
MAX_VALUE = 3_000  # a button's value, a view's private metadata


def interaction(body: Body, app_id: str | None) -> str | None:
    """Why a `block_actions` or `view_submission` payload is off-shape (None: it is fine)."""
    try:
        _app(body, app_id)
        _id(body, "trigger_id", TRIGGER, required=True)
        team = body.get("team")
        if not isinstance(team, Mapping):
            raise OffShape("team")
        _id(team, "id", TEAM, required=True)
        user = body.get("user")
        if not isinstance(user, Mapping):
            raise OffShape("user")
        _id(user, "id", USER, required=True)
        _id(user, "team_id", TEAM)
        enterprise = body.get("enterprise")
        if enterprise is not None and not isinstance(enterprise, Mapping):
            raise OffShape("enterprise")
        if isinstance(enterprise, Mapping):
            _id(enterprise, "id", ENTERPRISE)
        install = body.get("is_enterprise_install")
        if install is not None and not isinstance(install, bool):
            raise OffShape("is_enterprise_install")
        if body.get("type") == "block_actions":
            _check_actions(body)
        else:
            _check_view(body.get("view"))
    except OffShape as exc:
        return exc.field
    return None


def _check_actions(body: Body) -> None:
    actions = body.get("actions")
    if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_ACTIONS:
        raise OffShape("actions")
    for action in actions:
        if not isinstance(action, Mapping):
            raise OffShape("actions")
        _text(action, "action_id", required=True)
        _text(action, "block_id")
        _text(action, "type")
        _value(action, "value", "actions.value")
        selected = _mapping(action, "selected_option", "actions.selected_option")
        if selected is not None:
            _text(selected, "value")
    for name in ("container", "channel", "message"):
        if body.get(name) is not None and not isinstance(body[name], Mapping):
            raise OffShape(name)
    container = body.get("container") or {}
    _id(container, "channel_id", CHANNEL)
    _id(container, "message_ts", TS)
    _id(container, "thread_ts", TS)
    _id(body.get("channel") or {}, "id", CHANNEL)
    message = body.get("message") or {}
    _id(message, "ts", TS)
    _id(message, "thread_ts", TS)


def _check_view(view: object) -> None:
    if not isinstance(view, Mapping):
        raise OffShape("view")
    _text(view, "id", required=True)
    _text(view, "callback_id")
    _value(view, "private_metadata", "view.private_metadata")
    _mapping(view, "state", "view.state")


def slash_command(form: Body, app_id: str | None) -> str | None:
    """Why a slash command's form is off-shape (None: it is fine)."""
    try:
        _id(form, "command", COMMAND, required=True)
        _id(form, "team_id", TEAM, required=True)
        _id(form, "enterprise_id", ENTERPRISE)
        _id(form, "user_id", USER, required=True)
        _id(form, "channel_id", CHANNEL, required=True)
        _id(form, "trigger_id", TRIGGER, required=True)
        _id(form, "response_url", URL, required=True)
        _app(form, app_id)
        text = form.get("text", "")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise OffShape("text")
    except OffShape as exc:
        return exc.field
    return None


def is_known_event(body: Body) -> bool:
    """Whether the event is one the app subscribes to (others are acknowledged and ignored)."""
    event = body.get("event")
    return isinstance(event, Mapping) and event.get("type") in KNOWN_EVENTS


def _check_envelope(body: Body, app_id: str | None) -> None:
    _id(body, "team_id", TEAM, required=True)
    _id(body, "enterprise_id", ENTERPRISE)
    _app(body, app_id)
    flag = body.get("is_ext_shared_channel")
    if flag is not None and not isinstance(flag, bool):
        raise OffShape("is_ext_shared_channel")
    _id(body, "context_team_id", TEAM)
    _id(body, "context_enterprise_id", ENTERPRISE)
    authorizations = body.get("authorizations")
    if authorizations is None:
        return
    if not isinstance(authorizations, list) or len(authorizations) > 100:
        raise OffShape("authorizations")
    for grant in authorizations:
        if not isinstance(grant, Mapping):
            raise OffShape("authorizations")
        _id(grant, "team_id", TEAM)
        _id(grant, "enterprise_id", ENTERPRISE)
        _id(grant, "user_id", USER)
        install = grant.get("is_enterprise_install")
        if install is not None and not isinstance(install, bool):
            raise OffShape("authorizations")


def _check_message(body: Body, event: Mapping[str, Any]) -> None:
    _id(event, "channel", CHANNEL, required=True)
    _id(event, "ts", TS, required=True)
    _id(event, "thread_ts", TS)
    _id(event, "user", USER)
    _text(event, "subtype")
    _text(event, "bot_id")
    _text(event, "channel_type")
    text = event.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
        raise OffShape("event.text")
    for name in ("team", "user_team", "source_team"):
        _id(event, name, TEAM)
    for name in ("message", "previous_message"):  # edits and deletions: bolt looks inside
        if event.get(name) is not None and not isinstance(event[name], Mapping):
            raise OffShape(f"event.{name}")
    user_team = event.get("user_team") or event.get("team")
    shared = body.get("is_ext_shared_channel") is True or bool(body.get("enterprise_id"))
    if user_team and user_team != body.get("team_id") and not shared:
        # Only Slack Connect (or an Enterprise Grid org) has members of other teams.
        raise OffShape("event.user_team")
    _check_files(event.get("files"))


def _check_files(files: object) -> None:
    if files is None:
        return
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise OffShape("event.files")
    for file in files:
        if not isinstance(file, Mapping):
            raise OffShape("event.files")
        _id(file, "id", FILE, required=True)
        _text(file, "name")
        _text(file, "mimetype")
        size = file.get("size")
        if size is not None and (type(size) is not int or size < 0):
            raise OffShape("event.files.size")
        _id(file, "url_private", URL)
        _id(file, "url_private_download", URL)


def _check_assistant_thread(event: Mapping[str, Any]) -> None:
    thread = event.get("assistant_thread")
    if not isinstance(thread, Mapping):
        raise OffShape("event.assistant_thread")
    _id(thread, "channel_id", CHANNEL, required=True)
    _id(thread, "thread_ts", TS, required=True)
    _id(thread, "user_id", USER)
    if thread.get("context") is not None and not isinstance(thread["context"], Mapping):
        raise OffShape("event.assistant_thread.context")


def _app(body: Body, app_id: str | None) -> None:
    _id(body, "api_app_id", APP, required=True)
    if app_id is not None and body["api_app_id"] != app_id:
        raise OffShape("api_app_id")


def _id(
    body: Mapping[str, Any], name: str, shape: re.Pattern[str], *, required: bool = False
) -> None:
    """`body[name]` has `shape`; absent (or null/empty) is fine unless `required`."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise OffShape(name)
        return
    if not isinstance(value, str) or shape.fullmatch(value) is None:
        raise OffShape(name)


def _value(body: Mapping[str, Any], name: str, where: str) -> None:
    """`body[name]` is a string of at most `MAX_VALUE` characters, or absent (else `where`
    is off-shape)."""
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > MAX_VALUE):
        raise OffShape(where)


def _mapping(body: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any] | None:
    """`body[name]` is an object, or absent (else `where` is off-shape)."""
    value = body.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise OffShape(where)
    return value


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """`body[name]` is a short string (or absent unless `required`)."""
    value = body.get(name)
    if value is None:
        if required:
            raise OffShape(name)
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise OffShape(name)
    return value

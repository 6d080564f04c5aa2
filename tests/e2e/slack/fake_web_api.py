"""The Web API methods of the fake Slack, with Slack's own error codes for bad arguments."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.e2e.slack.fake_records import APP_ID, BOT_ID, BOT_USER, TEAM, Message, Upload

if TYPE_CHECKING:
    from tests.e2e.slack.fake_slack import FakeSlack

SECTION_LIMIT = 3000
TEXT_LIMIT = 40_000


class SlackError(Exception):
    """An `{"ok": false, "error": code}` answer."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _need(params: dict[str, Any], *names: str, code: str = "invalid_arguments") -> None:
    if any(params.get(name) in (None, "") for name in names):
        raise SlackError(code)


def _blocks(params: dict[str, Any], *, modal: bool = False) -> list[dict[str, Any]]:
    raw = params.get("blocks") or []
    blocks = json.loads(raw) if isinstance(raw, str) else raw
    kinds = {"section", "context", "header", "divider", "actions"} | ({"input"} if modal else set())
    action_ids: set[str] = set()
    for block in blocks:
        if block.get("type") == "section" and len(block["text"]["text"]) > SECTION_LIMIT:
            raise SlackError("invalid_blocks")
        if block.get("type") not in kinds:
            raise SlackError("invalid_blocks")
        if len(str(block.get("block_id") or "")) > 255:
            raise SlackError("invalid_blocks")
        if block.get("type") == "actions":
            _check_elements(block.get("elements"), action_ids)
        if block.get("type") == "input":
            element = block.get("element") or {}
            if element.get("type") != "plain_text_input" or not element.get("action_id"):
                raise SlackError("invalid_blocks")
            if len(block.get("label", {}).get("text", "")) > 2000:
                raise SlackError("invalid_blocks")
    if len(blocks) > (100 if modal else 50):
        raise SlackError("invalid_blocks")
    return list(blocks)


def _plain(text: object, limit: int) -> None:
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        raise SlackError("invalid_blocks")
    if not 1 <= len(str(text.get("text") or "")) <= limit:
        raise SlackError("invalid_blocks")


def _check_elements(elements: object, action_ids: set[str]) -> None:
    """An actions block as Slack takes it: 1-25 buttons and selects, unique action ids."""
    if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
        raise SlackError("invalid_blocks")
    for element in elements:
        action_id = str(element.get("action_id") or "")
        if not 1 <= len(action_id) <= 255 or action_id in action_ids:
            raise SlackError("invalid_blocks")
        action_ids.add(action_id)
        if element.get("type") == "button":
            _plain(element.get("text"), 75)
            if len(str(element.get("value") or "")) > 2000:
                raise SlackError("invalid_blocks")
            url = element.get("url")
            if url is not None and (
                not str(url).startswith(("https://", "http://")) or len(str(url)) > 3000
            ):
                raise SlackError("invalid_blocks")
            if element.get("style") not in (None, "primary", "danger"):
                raise SlackError("invalid_blocks")
        elif element.get("type") == "static_select":
            _plain(element.get("placeholder"), 150)
            options = element.get("options")
            if not isinstance(options, list) or not 1 <= len(options) <= 100:
                raise SlackError("invalid_blocks")
            for option in options:
                _plain(option.get("text"), 75)
                if not 1 <= len(str(option.get("value") or "")) <= 150:
                    raise SlackError("invalid_blocks")
        else:
            raise SlackError("invalid_blocks")


def _content(params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    text = str(params.get("text") or "")
    blocks = _blocks(params)
    if not text and not blocks:
        raise SlackError("no_text")
    if len(text) > TEXT_LIMIT:
        raise SlackError("msg_too_long")
    return text, blocks


def _channel(fake: FakeSlack, params: dict[str, Any], name: str = "channel") -> str:
    channel = str(params.get(name) or "")
    if not channel or channel[0] not in "CDG":
        raise SlackError("channel_not_found")
    if channel in fake.not_member:
        raise SlackError("not_in_channel")
    owner = fake.channel_teams.get(channel, TEAM)
    caller = fake.current
    if caller is not None and owner not in (caller.team_id, caller.enterprise_id):
        raise SlackError("channel_not_found")  # another workspace's channel: not seen
    return channel


def auth_test(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """auth.test: who the bot token belongs to."""
    workspace = fake.current
    assert workspace is not None
    answer = {
        "url": f"{fake.url}/",
        "team": workspace.name,
        "user": "samsar",
        "team_id": workspace.team_id,
        "user_id": workspace.bot_user,
        "bot_id": workspace.bot_id,
        "is_enterprise_install": workspace.org_install,
    }
    if workspace.enterprise_id:
        answer["enterprise_id"] = workspace.enterprise_id
    return answer


def _metadata(params: dict[str, Any]) -> dict[str, Any] | None:
    """A message's `metadata` as Slack checks it: an event type (letters, digits, `_`) and an
    object of a payload; a JSON string in a form."""
    raw = params.get("metadata")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    if not isinstance(raw, dict) or set(raw) != {"event_type", "event_payload"}:
        raise SlackError("invalid_metadata_format")
    kind, payload = raw["event_type"], raw["event_payload"]
    if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,255}", kind):
        raise SlackError("invalid_metadata_format")
    if not isinstance(payload, dict):
        raise SlackError("invalid_metadata_format")
    return raw


def post_message(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """chat.postMessage."""
    channel = _channel(fake, params)
    text, blocks = _content(params)
    metadata = _metadata(params)
    ts = fake.next_ts()
    thread_ts = params.get("thread_ts") or None
    message = Message(channel, ts, thread_ts, text, blocks, versions=[text], metadata=metadata)
    fake.messages.append(message)
    return {"channel": channel, "ts": ts, "message": {"text": text, "ts": ts}}


def replies(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """conversations.replies: the bot's messages of a thread, oldest first, their metadata
    only when asked for (`include_all_metadata`), `limit` a page (a cursor for the next)."""
    channel = _channel(fake, params)
    _need(params, "ts")
    limit = int(params.get("limit") or 1000)
    if not 1 <= limit <= 1000:
        raise SlackError("invalid_limit")
    found = [m for m in fake.thread(channel, str(params["ts"]))]
    start = int(params.get("cursor") or 0)
    page = found[start : start + limit]
    with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
    messages = []
    for message in page:
        shown: dict[str, Any] = {
            "type": "message",
            "ts": message.ts,
            "thread_ts": message.thread_ts,
            "text": message.text,
            "bot_id": fake.current.bot_id if fake.current else None,
        }
        if with_metadata and message.metadata is not None:
            shown["metadata"] = message.metadata
        messages.append(shown)
    more = start + limit < len(found)
    return {
        "messages": messages,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


def update(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """chat.update: only the bot's own live messages."""
    channel = _channel(fake, params)
    _need(params, "ts")
    text, blocks = _content(params)
    for message in fake.messages:
        if message.channel == channel and message.ts == params["ts"] and not message.deleted:
            message.text, message.blocks = text, blocks
            message.versions.append(text)
            return {"channel": channel, "ts": message.ts, "text": text}
    raise SlackError("message_not_found")


def delete(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """chat.delete."""
    channel = _channel(fake, params)
    _need(params, "ts")
    for message in fake.messages:
        if message.channel == channel and message.ts == params["ts"] and not message.deleted:
            message.deleted = True
            return {"channel": channel, "ts": message.ts}
    raise SlackError("message_not_found")


def post_ephemeral(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """chat.postEphemeral: a note only `user` sees."""
    _channel(fake, params)
    _need(params, "user")
    text, blocks = _content(params)
    fake.ephemerals.append({**params, "text": text, "blocks": blocks})
    return {"message_ts": fake.next_ts()}


def users_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """users.info."""
    _need(params, "user")
    user = fake.users.get(str(params["user"]))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user}


def get_upload_url(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """files.getUploadURLExternal: step one of an upload."""
    _need(params, "filename", "length")
    if not str(params["length"]).isdigit():
        raise SlackError("invalid_arguments")
    file_id = fake.next_id("F")
    fake.uploads[file_id] = Upload(file_id, str(params["filename"]), int(params["length"]))
    return {"upload_url": f"{fake.url}/upload/{file_id}", "file_id": file_id}


def complete_upload(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """files.completeUploadExternal: share uploaded files into a channel/thread."""
    _need(params, "files")
    items = json.loads(params["files"]) if isinstance(params["files"], str) else params["files"]
    channel = _channel(fake, params, "channel_id") if params.get("channel_id") else None
    done = []
    for item in items:
        upload = fake.uploads.get(str(item.get("id")))
        if upload is None or upload.data is None or upload.completed:
            raise SlackError("file_not_found")
        upload.title, upload.channel = item.get("title"), channel
        upload.thread_ts, upload.completed = params.get("thread_ts") or None, True
        done.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
    return {"files": done}


def files_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """files.info: a member file's metadata with its private URLs."""
    _need(params, "file")
    found = fake.files.get(str(params["file"]))
    if found is None:
        raise SlackError("file_not_found")
    return {"file": found[0]}


def views_publish(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """views.publish: the App Home tab."""
    _need(params, "user_id", "view")
    view = json.loads(params["view"]) if isinstance(params["view"], str) else params["view"]
    if view.get("type") != "home":
        raise SlackError("invalid_arguments")
    _blocks({"blocks": view.get("blocks", [])})
    fake.views.append({"user_id": params["user_id"], "view": view})
    return {"view": {"id": fake.next_id("V"), **view}}


def set_status(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """assistant.threads.setStatus (an empty status clears it)."""
    _need(params, "channel_id", "thread_ts")
    if params.get("status") is None:
        raise SlackError("invalid_arguments")
    return {}


def set_suggested_prompts(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """assistant.threads.setSuggestedPrompts: 1-4 prompts, each a title and a message."""
    _need(params, "channel_id", "thread_ts", "prompts")
    raw = params["prompts"]
    prompts = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
        raise SlackError("invalid_arguments")
    for prompt in prompts:
        if not prompt.get("title") or not prompt.get("message"):
            raise SlackError("invalid_arguments")
    fake.suggested[(params["channel_id"], params["thread_ts"])] = prompts
    return {}


def set_title(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """assistant.threads.setTitle."""
    _need(params, "channel_id", "thread_ts", "title")
    fake.titles[(params["channel_id"], params["thread_ts"])] = str(params["title"])
    return {}


def views_open(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """views.open: a modal, with the trigger of an interaction at most 3 s old, used once."""
    _need(params, "trigger_id", "view")
    issued = fake.triggers.pop(str(params["trigger_id"]), None)
    if issued is None:
        raise SlackError("invalid_trigger_id")
    if time.monotonic() - issued > 3.0:
        raise SlackError("expired_trigger_id")
    view = json.loads(params["view"]) if isinstance(params["view"], str) else params["view"]
    title = view.get("title") or {}
    if view.get("type") != "modal" or not 1 <= len(str(title.get("text") or "")) <= 24:
        raise SlackError("invalid_arguments")
    if len(str(view.get("private_metadata") or "")) > 3000:
        raise SlackError("invalid_arguments")
    if len(str((view.get("submit") or {}).get("text") or "")) > 24:
        raise SlackError("invalid_arguments")
    _blocks({"blocks": view.get("blocks", [])}, modal=True)
    opened = {"id": fake.next_id("V"), **view}
    fake.opened_views.append(opened)
    return {"view": opened}


def bots_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """bots.info: a bot user's app (the one way a bot token learns its app id)."""
    _need(params, "bot")
    if params["bot"] != BOT_ID:
        raise SlackError("bot_not_found")
    return {
        "bot": {
            "id": BOT_ID,
            "deleted": False,
            "name": "samsar",
            "updated": 1690000000,
            "app_id": APP_ID,
            "user_id": BOT_USER,
            "icons": {},
        }
    }


def connections_open(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """apps.connections.open: a websocket URL for Socket Mode."""
    return {"url": f"{fake.socket.url}?ticket={fake.next_id('tk')}"}


METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": auth_test,
    "bots.info": bots_info,
    "chat.postMessage": post_message,
    "chat.update": update,
    "chat.delete": delete,
    "chat.postEphemeral": post_ephemeral,
    "conversations.replies": replies,
    "users.info": users_info,
    "files.getUploadURLExternal": get_upload_url,
    "files.completeUploadExternal": complete_upload,
    "files.info": files_info,
    "views.publish": views_publish,
    "assistant.threads.setStatus": set_status,
    "assistant.threads.setSuggestedPrompts": set_suggested_prompts,
    "assistant.threads.setTitle": set_title,
    "views.open": views_open,
    "apps.connections.open": connections_open,
}

"""The Web API methods of the fake Slack, with Slack's own error codes for bad arguments."""

from __future__ import annotations

import json
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


def _blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    raw = params.get("blocks") or []
    blocks = json.loads(raw) if isinstance(raw, str) else raw
    for block in blocks:
        if block.get("type") == "section" and len(block["text"]["text"]) > SECTION_LIMIT:
            raise SlackError("invalid_blocks")
        if block.get("type") not in ("section", "context", "header", "divider"):
            raise SlackError("invalid_blocks")
    if len(blocks) > 50:
        raise SlackError("invalid_blocks")
    return list(blocks)


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


def post_message(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    """chat.postMessage."""
    channel = _channel(fake, params)
    text, blocks = _content(params)
    ts = fake.next_ts()
    thread_ts = params.get("thread_ts") or None
    message = Message(channel, ts, thread_ts, text, blocks, versions=[text])
    fake.messages.append(message)
    return {"channel": channel, "ts": ts, "message": {"text": text, "ts": ts}}


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
    "users.info": users_info,
    "files.getUploadURLExternal": get_upload_url,
    "files.completeUploadExternal": complete_upload,
    "files.info": files_info,
    "views.publish": views_publish,
    "assistant.threads.setStatus": set_status,
    "apps.connections.open": connections_open,
}

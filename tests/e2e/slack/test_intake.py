"""The front door: what Slack would never send is refused or ignored before any work, with one
WARNING line and no traceback; nothing off-shape is downloaded, recorded or billed."""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack
from tests.e2e.slack.fake_records import SIGNING_SECRET
from tests.e2e.slack.payloads import ALICE, CHANNEL, DM
from tests.fakes import PNG_1PX
from tests.ledger import turn_rows

JSON, FORM = "application/json", "application/x-www-form-urlencoded"
INTAKE = "bots.slack.intake"

Payload = dict[str, Any]


async def post_raw(slack: Slack, data: bytes, content_type: str, *, signed: bool = True) -> int:
    """POST raw bytes to the request URL, signed over exactly those bytes (or not at all)."""
    headers = {"Content-Type": content_type}
    if signed:
        headers |= sign_bytes(data)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.http_url}/slack/events", data=data, headers=headers) as response,
    ):
        return response.status


def sign_bytes(data: bytes) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (which need not be UTF-8)."""
    ts = str(int(time.time()))
    base = b"v0:" + ts.encode() + b":" + data
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def warnings_of(caplog: pytest.LogCaptureFixture, logger: str = INTAKE) -> list[logging.LogRecord]:
    """WARNING lines of one logger."""
    return [r for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> bool:
    """No log line of the run carries a traceback."""
    return all(record.exc_info is None for record in caplog.records)


async def nothing_done(slack: Slack) -> bool:
    """Nothing recorded, downloaded or sent to Samsar."""
    await slack.settle()
    return (
        await turn_rows(slack.store.engine) == []
        and slack.fake.downloads == []
        and slack.sandbox.state.calls == []
    )


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"this is not json", JSON),
        (b"null", JSON),
        (b'[{"type": "event_callback"}]', JSON),
        (b"[" * 100_000 + b"]" * 100_000, JSON),
        (b'{"type": "event_callback", "team_id": "\xff\xfe"}', JSON),
        (b"token=t&team_id=T0TEAM&command=%2Fsamsar", JSON),  # a form sent as JSON
        (b'{"type": "event_callback"}', FORM),  # JSON sent as a form
    ],
    ids=["text", "null", "array", "deep", "not-utf8", "form-as-json", "json-as-form"],
)
async def test_signed_garbage_gets_400_and_one_warning_line(
    slack_http: Slack, caplog: pytest.LogCaptureFixture, data: bytes, content_type: str
) -> None:
    caplog.set_level(logging.INFO)
    assert await post_raw(slack_http, data, content_type) == 400
    assert len(warnings_of(caplog)) == 1 and no_tracebacks(caplog)
    assert await nothing_done(slack_http) and slack_http.fake.calls == []


async def test_unsigned_garbage_is_refused_before_it_is_read(
    slack_http: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    for data in (b"\xff\xfe not even utf-8", b"[" * 100_000):
        assert await post_raw(slack_http, data, JSON, signed=False) == 401
    assert [r.reason for r in warnings_of(caplog)] == ["unsigned", "unsigned"]
    assert no_tracebacks(caplog) and await nothing_done(slack_http)


def _set(path: str, value: Any) -> Callable[[Payload], None]:
    """A change to one field of the payload, `event.ts` style."""

    def change(payload: Payload) -> None:
        *parents, last = path.split(".")
        node = payload
        for name in parents:
            node = node[name]
        node[last] = value

    return change


def _drop(path: str) -> Callable[[Payload], None]:
    def change(payload: Payload) -> None:
        *parents, last = path.split(".")
        node = payload
        for name in parents:
            node = node[name]
        del node[last]

    return change


OFF_SHAPE: dict[str, Callable[[Payload], None]] = {
    "ts-in-spaces": lambda p: _set("event.ts", f" {p['event']['ts']} ")(p),
    "ts-with-rtl-mark": lambda p: _set("event.ts", "\u200f" + p["event"]["ts"])(p),
    "ts-arabic-digits": _set("event.ts", "١٦٩٠٠٠٠٠٠٠.٠٠٠٠٠١"),
    "another-app": _set("api_app_id", "A0SOMEONEELSE"),
    "user-of-another-team": _set("event.user_team", "T0OTHERTEAM"),
    "team-id-100k": _set("team_id", "T" + "A" * 100_000),
    "channel-a-number": _set("event.channel", 12345),
    "channel-missing": _drop("event.channel"),
    "authorizations-a-string": _set("authorizations", "everyone"),
    "authorizations-of-strings": _set("authorizations", ["T0TEAM"]),
    "event-a-list": _set("event", [1, 2]),
    "files-not-a-list": _set("event.files", {"id": "F1"}),
    "file-size-a-string": lambda p: _set("event.files", [{**p["event"]["files"][0], "size": "1"}])(
        p
    ),
    "user-a-dict": _set("event.user", {"id": ALICE}),
}


def file_share(slack: Slack) -> Payload:
    """A DM with an image: what would be downloaded and billed if it got through."""
    file = slack.fake.add_file("cat.png", PNG_1PX)
    return payloads.message("look", channel=DM, files=[file], subtype="file_share")


@pytest.mark.parametrize("change", list(OFF_SHAPE), ids=list(OFF_SHAPE))
async def test_an_off_shape_event_is_acknowledged_and_nothing_is_billed(
    slack: Slack, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    payload = file_share(slack)
    OFF_SHAPE[change](payload)
    await slack.event(payload)  # HTTP 200, or the Socket Mode ack
    [line] = warnings_of(caplog)
    assert line.getMessage() == "slack payload ignored"
    assert no_tracebacks(caplog) and await nothing_done(slack)


async def test_the_same_event_in_shape_is_answered(slack: Slack) -> None:
    payload = file_share(slack)
    at = payload["event"]["ts"]
    await slack.event(copy.deepcopy(payload))
    await slack.settle()
    [answer] = slack.fake.thread(DM, at)
    assert answer.section_text().startswith("Sandbox reply #1: look")
    assert len(slack.fake.downloads) == 1


async def test_a_slack_connect_member_of_another_team_is_answered(slack: Slack) -> None:
    payload = payloads.mention("hello from afar")
    payload["is_ext_shared_channel"] = True
    payload["event"]["user_team"] = "T0OTHERTEAM"
    await slack.event(payload)
    await slack.settle()
    [answer] = slack.fake.thread(CHANNEL, payload["event"]["ts"])
    assert answer.section_text().startswith("Sandbox reply #1: hello from afar")
    [user] = slack.sandbox.state.users.values()
    assert user.external_user_id == f"slack:T0OTHERTEAM:{ALICE}"


async def test_events_the_app_does_not_use_are_acknowledged_quietly(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    reaction = {"type": "reaction_added", "user": ALICE, "reaction": "tada", "item": {}}
    await slack.event(payloads.callback(reaction))
    await slack.event(
        {"type": "app_rate_limited", "team_id": payloads.TEAM, "minute_rate_limited": 1}
    )
    assert warnings_of(caplog) == [] and await nothing_done(slack)


@pytest.mark.parametrize(
    "change",
    [_drop("response_url"), _set("api_app_id", "A0SOMEONEELSE"), _set("user_id", "alice")],
    ids=["no-response-url", "another-app", "user-not-an-id"],
)
async def test_an_off_shape_command_is_acknowledged_and_not_run(
    slack_http: Slack, caplog: pytest.LogCaptureFixture, change: Callable[[Payload], None]
) -> None:
    form = payloads.command("ask anything", slack_http.fake.response_url())
    change(form)
    body = urlencode(form)
    status = await post_raw(slack_http, body.encode(), FORM)
    assert status == 200 and len(warnings_of(caplog)) == 1
    assert await nothing_done(slack_http) and slack_http.fake.messages == []


async def test_a_command_whose_text_says_payload_is_still_a_command(slack: Slack) -> None:
    # bolt would read any form containing "payload" as an interactivity payload.
    await slack.command("ask what is a payload?")
    await slack.settle()
    [root] = [m for m in slack.fake.messages if m.thread_ts is None]
    [answer] = slack.fake.thread(CHANNEL, root.ts)
    assert answer.section_text().startswith("Sandbox reply #1: what is a payload?")


async def test_the_root_of_ask_is_escaped_and_posted_like_every_post(slack: Slack) -> None:
    await slack.command("ask <!channel> is <@U0BOB> around? <https://x.test|x>")
    await slack.settle()
    [root] = [m for m in slack.fake.messages if m.thread_ts is None]
    assert root.text == (
        f"<@{ALICE}> asks: &lt;!channel&gt; is &lt;@U0BOB&gt; around? &lt;https://x.test|x&gt;"
    )
    [post] = [c for c in slack.fake.calls_to("chat.postMessage") if c.response.get("ts") == root.ts]
    assert str(post.params.get("parse")) == "none"
    assert str(post.params.get("link_names")).lower() in ("false", "0")
    assert str(post.params.get("unfurl_links")).lower() in ("false", "0")


async def test_a_slack_answer_that_is_not_json_ends_in_the_download_sentence(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    file = slack.fake.add_file("shared.png", PNG_1PX)
    connect_file = {k: v for k, v in file.items() if not k.startswith("url_")}  # Slack Connect
    slack.fake.garble("files.info", times=3)
    at = payloads.ts()
    await slack.event(payloads.message("see this", channel=DM, at=at, files=[connect_file]))
    await slack.settle()
    [answer] = slack.fake.thread(DM, at)
    assert answer.text == "That attachment is not an image I can read (PNG, JPEG, WebP or GIF)."
    assert slack.completions() == [] and no_tracebacks(caplog)


async def test_too_many_images_are_refused_before_any_download(slack: Slack) -> None:
    files = [slack.fake.add_file(f"p{n}.png", PNG_1PX) for n in range(5)]  # the limit is 4
    at = payloads.ts()
    await slack.event(payloads.message("all of these", channel=DM, at=at, files=files))
    await slack.settle()
    [answer] = slack.fake.thread(DM, at)
    assert answer.text == "Too many images: send at most 4 per message."
    assert slack.fake.downloads == [] and slack.completions() == []


async def test_a_files_info_answer_with_an_odd_size_is_still_read(slack: Slack) -> None:
    file = slack.fake.add_file("shared.png", PNG_1PX)
    connect_file = {k: v for k, v in file.items() if not k.startswith("url_")}  # Slack Connect
    file["size"] = "about 70 bytes"  # what files.info will say
    at = payloads.ts()
    await slack.event(payloads.message("see this", channel=DM, at=at, files=[connect_file]))
    await slack.settle()
    [answer] = slack.fake.thread(DM, at)
    assert "(received 1 image)" in answer.section_text()

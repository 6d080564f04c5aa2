"""Seeded, bounded fuzzing of the Slack front door through the real slack-bolt app: signed HTTP
requests and Socket Mode envelopes built from real payloads, then mangled (odd types, ids out
of shape, another app or team, garbage bodies). The properties: no 5xx and every envelope
acknowledged, no traceback, nothing recorded or downloaded for off-shape input, and a normal
turn still answered afterwards.

Every case has its own seed, printed on failure. Re-run one with
`SLACK_FUZZ_SEED=<seed> SLACK_FUZZ_CASES=1 pytest tests/e2e/slack/test_fuzz.py`.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack, running_slack
from tests.e2e.slack.fake_records import SIGNING_SECRET, TEAM
from tests.e2e.slack.payloads import ALICE, CHANNEL, DM
from tests.fakes import PNG_1PX
from tests.ledger import turn_rows

SEED = int(os.environ.get("SLACK_FUZZ_SEED", "1212"))
CASES = int(os.environ.get("SLACK_FUZZ_CASES", "300"))
JSON, FORM = "application/json", "application/x-www-form-urlencoded"

Payload = dict[str, Any]
Check = Callable[[Any], bool]


def _shape(pattern: str, *, required: bool) -> Check:
    """A Slack id or timestamp field: absent only when optional, else exactly `pattern`."""
    compiled = re.compile(pattern, re.ASCII)

    def ok(value: Any) -> bool:
        if value is None or value == "":
            return not required
        return isinstance(value, str) and compiled.fullmatch(value) is not None

    return ok


def _optional(kind: type | tuple[type, ...]) -> Check:
    return lambda value: value is None or (isinstance(value, kind) and type(value) is not bool)


TEAM_ID, USER_ID = r"[TE][A-Z0-9]{2,31}", r"[UW][A-Z0-9]{2,31}"
CHANNEL_ID, TS = r"[CDG][A-Z0-9]{2,31}", r"[0-9]{1,12}\.[0-9]{6}"
# What Slack's contract promises about the fields the bot relies on, per kind of payload.
ENVELOPE: dict[str, Check] = {
    "team_id": _shape(TEAM_ID, required=True),
    "api_app_id": _shape(r"A0FAKE", required=True),  # this app's own id, nothing else
    "enterprise_id": _shape(r"E[A-Z0-9]{2,31}", required=False),
    "authorizations": lambda v: (
        v is None or (isinstance(v, list) and all(isinstance(a, dict) for a in v))
    ),
    "is_ext_shared_channel": lambda v: v is None or isinstance(v, bool),
}
MESSAGE: dict[str, Check] = {
    "event.channel": _shape(CHANNEL_ID, required=True),
    "event.ts": _shape(TS, required=True),
    "event.thread_ts": _shape(TS, required=False),
    "event.user": _shape(USER_ID, required=False),
    "event.user_team": _shape(TEAM, required=False),  # no Slack Connect here
    "event.files": lambda v: v is None or isinstance(v, list),
    "event.text": lambda v: v is None or (isinstance(v, str) and len(v) <= 40_000),
}
FILE: dict[str, Check] = {
    "event.files.0.id": _shape(r"F[A-Z0-9]{2,31}", required=True),
    "event.files.0.size": lambda v: v is None or (type(v) is int and v >= 0),
    "event.files.0.url_private_download": _shape(r"https?://[!-~]+", required=False),
}
ASSISTANT: dict[str, Check] = {
    "event.assistant_thread": lambda v: isinstance(v, dict),
    "event.assistant_thread.channel_id": _shape(CHANNEL_ID, required=True),
    "event.assistant_thread.thread_ts": _shape(TS, required=True),
}
HOME: dict[str, Check] = {"event.user": _shape(USER_ID, required=True)}
COMMAND: dict[str, Check] = {
    "team_id": _shape(TEAM_ID, required=True),
    "user_id": _shape(USER_ID, required=True),
    "channel_id": _shape(CHANNEL_ID, required=True),
    "api_app_id": _shape(r"A0FAKE", required=True),
    "trigger_id": _shape(r"[0-9A-Za-z._-]{1,128}", required=True),
    "response_url": _shape(r"https?://[!-~]+", required=True),
    "command": _shape(r"/[0-9a-z_-]{1,32}", required=True),
}
INTERACTIVE: dict[str, Check] = {
    "team.id": _shape(TEAM_ID, required=True),
    "user.id": _shape(USER_ID, required=True),
    "api_app_id": _shape(r"A0FAKE", required=True),
    "trigger_id": _shape(r"[0-9A-Za-z._-]{1,128}", required=True),
    "container.channel_id": _shape(CHANNEL_ID, required=False),
    "message.ts": _shape(TS, required=False),
    "actions": lambda v: (
        isinstance(v, list) and 1 <= len(v) <= 25 and all(isinstance(a, dict) for a in v)
    ),
    "actions.0.action_id": lambda v: isinstance(v, str) and 0 < len(v) <= 1_000,
    "actions.0.value": lambda v: v is None or (isinstance(v, str) and len(v) <= 3_000),
}
CLICKS = ["samsar_regen", "samsar_hd", "samsar_edit", "samsar_retry", "samsar_feedback_up"]

ODD: list[Any] = [
    None,
    "",
    12345,
    1.5,
    True,
    [],
    {},
    ["x"],
    {"id": "U0ALICE"},
    "x" * 100_000,
    "u0alice",
    "١٦٩٠٠٠٠٠٠٠.٠٠٠٠٠١",
    "T0OTHERTEAM",
    "A0SOMEONEELSE",
    "-1",
]
TEXTS = [
    "hello",
    "",
    "   ",
    "<!channel> <@U0BOB> <https://x.test|x>",
    "שלום \u202eevil\u202c 👨‍👩‍👧 مرحبا",
    "x" * 5_000,
    "\x00\x01 control",
    "what is a payload?",
]
COMMAND_TEXTS = ["ask hi", "credits", "help", "imagine a red square", "persona show", "buy 5", "zz"]


@dataclass
class Case:
    """One fuzzed request: how it travels and whether Slack's contract says it is off-shape."""

    kind: str
    body: Payload | Any
    off_shape: bool
    raw: bytes | None = None  # body-level garbage, sent as is
    content_type: str = JSON
    files: list[str] = field(default_factory=list)
    what: str = ""


def _get(root: Any, path: str) -> Any:
    for step in path.split("."):
        root = root[int(step)] if isinstance(root, list) else root[step]
    return root


def _put(root: Any, path: str, value: Any) -> bool:
    """Set `path` (its parents must exist); False when they do not."""
    *parents, last = path.split(".")
    try:
        node = _get(root, ".".join(parents)) if parents else root
    except (KeyError, IndexError, TypeError):
        return False
    if isinstance(node, list):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        return False
    return True


def base(rng: random.Random, slack: Slack) -> tuple[str, Payload, dict[str, Check], list[str]]:
    """A payload as Slack sends it, and the contract of the fields the bot relies on."""
    roll = rng.randrange(9)
    text = rng.choice(TEXTS)
    if roll == 8:  # a click on a button of an answer (of a turn the ledger does not hold)
        at = payloads.ts()
        action = {"action_id": rng.choice(CLICKS), "block_id": "b", "type": "button"}
        action["value"] = f"{rng.randrange(16**32):032x}"
        click = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": ALICE, "team_id": TEAM},
            "api_app_id": "A0FAKE",
            "trigger_id": f"{rng.randrange(10**10)}.{rng.randrange(10**9)}.fz",
            "container": {"type": "message", "channel_id": DM, "message_ts": at},
            "channel": {"id": DM},
            "message": {"ts": at, "text": "an answer"},
            "actions": [action],
        }
        return "interactive", click, INTERACTIVE, []
    if roll == 0:
        return "event", payloads.mention(text), ENVELOPE | MESSAGE, []
    if roll in (1, 2):
        return "event", payloads.message(text, channel=DM), ENVELOPE | MESSAGE, []
    if roll == 3:
        file = slack.fake.add_file("cat.png", PNG_1PX)
        body = payloads.message(text, channel=DM, files=[file], subtype="file_share")
        return "event", body, ENVELOPE | MESSAGE | FILE, [file["id"]]
    if roll == 4:
        thread = {"channel_id": DM, "thread_ts": payloads.ts(), "user_id": ALICE}
        event = {"type": "assistant_thread_started", "assistant_thread": thread}
        return "event", payloads.callback(event), ENVELOPE | ASSISTANT, []
    if roll == 5:
        event = {"type": "app_home_opened", "user": ALICE, "channel": DM, "tab": "home"}
        return "event", payloads.callback(event), ENVELOPE | HOME, []
    form = payloads.command(rng.choice(COMMAND_TEXTS), slack.fake.response_url())
    form["trigger_id"] = f"{rng.randrange(10**10)}.{rng.randrange(10**9)}.fz"
    return "command", form, COMMAND, []


def benign(rng: random.Random, body: Payload) -> str:
    """A change Slack could make without breaking its contract."""
    move = rng.randrange(4)
    if move == 0 and isinstance(body.get("event"), dict):
        body["event"]["text"] = rng.choice(TEXTS)
        return "text"
    if move == 1:
        body[f"x_{rng.randrange(100)}"] = rng.choice(ODD[:9])
        return "extra key"
    if move == 2 and isinstance(body.get("event"), dict):
        body["event"]["type"] = rng.choice(["reaction_added", "team_join", "emoji_changed"])
        return "unused event"
    if move == 3 and "command" in body:
        body["text"] = rng.choice(COMMAND_TEXTS + TEXTS)
        return "command text"
    return "none"


def garbage(rng: random.Random, good: bytes) -> tuple[bytes, str]:
    """A body that is not a usable payload at all."""
    choice = rng.randrange(8)
    if choice == 0:
        return good[: rng.randrange(len(good))], JSON
    if choice == 1:
        return rng.choice([b"null", b"[]", b"[1, 2]", b'"text"', b"1e999", b"NaN"]), JSON
    if choice == 2:
        depth = rng.choice([1_000, 100_000])
        return b"[" * depth + b"]" * depth, JSON
    if choice == 3:
        return b"\xff\xfe" + good, JSON
    if choice == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), JSON
    if choice == 5:
        return b"token=t&team_id=T0TEAM&user_id=U0ALICE", JSON
    if choice == 6:
        return good, FORM
    return good, "text/plain"


def make_case(rng: random.Random, slack: Slack, transport: str) -> Case:
    """A real payload with benign changes, then maybe one change that breaks its contract."""
    kind, body, contract, files = base(rng, slack)
    what = [benign(rng, body) for _ in range(rng.randrange(3))]
    off_shape = False
    roll = rng.random()
    if roll < 0.12 and transport == "http":
        good = _encode(kind, body)[0]
        raw, content_type = garbage(rng, good)
        return Case(kind, body, True, raw, content_type, files, "garbage body")
    if roll < 0.12:
        body = rng.choice([None, [], "text", 7, [body]])
        return Case(kind, body, True, files=files, what="payload not an object")
    if roll < 0.75:
        path = rng.choice(list(contract))
        value = copy.deepcopy(rng.choice(ODD))
        if path == "event.user_team" and value == "T0OTHERTEAM" and rng.random() < 0.5:
            body["is_ext_shared_channel"] = True  # Slack Connect: then another team is fine
            contract = contract | {"event.user_team": _shape(TEAM_ID, required=False)}
        if kind == "command" and transport == "http" and value is not None:
            value = str(value)  # a form carries only strings
        if _put(body, path, value):
            off_shape = not contract[path](value)
            what.append(f"{path}={str(value)[:30]!r}")
    return Case(kind, body, off_shape, files=files, what=", ".join(what))


def _encode(kind: str, body: Any) -> tuple[bytes, str]:
    if kind == "interactive":  # a form whose `payload` is the JSON
        return urlencode({"payload": json.dumps(body)}).encode(), FORM
    if kind == "command" and isinstance(body, dict):
        form = {k: v for k, v in body.items() if v is not None}
        return urlencode(form).encode(), FORM
    return json.dumps(body).encode(), JSON


def _signed(data: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + data, "sha256")
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def send(slack: Slack, case: Case, session: aiohttp.ClientSession) -> str | None:
    """Deliver the case; what went wrong at the door (None: answered as it should be)."""
    if slack.transport == "http":
        data, content_type = _encode(case.kind, case.body)
        if case.raw is not None:
            data, content_type = case.raw, case.content_type
        headers = {"Content-Type": content_type, **_signed(data)}
        url = f"{slack.http_url}/slack/events"
        async with session.post(url, data=data, headers=headers) as response:
            return f"HTTP {response.status}" if response.status >= 500 else None
    kinds = {"command": "slash_commands", "interactive": "interactive"}
    envelope = await slack.fake.socket.send(kinds.get(case.kind, "events_api"), case.body)
    try:
        await slack.fake.wait_until(lambda: envelope in slack.fake.socket.acks, within=5)
    except TimeoutError:
        return "envelope never acknowledged"
    return None


async def _fuzz(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    failures: list[str] = []
    off_files: set[str] = set()
    counts = {"off-shape": 0, "in shape": 0}
    async with aiohttp.ClientSession() as session:
        for number in range(CASES):
            seed = SEED + number
            case = make_case(random.Random(seed), slack, slack.transport)
            counts["off-shape" if case.off_shape else "in shape"] += 1
            recorded = len(await turn_rows(slack.store.engine))
            traces = sum(1 for r in caplog.records if r.exc_info)
            problem = await send(slack, case, session)
            if case.off_shape and len(await turn_rows(slack.store.engine)) != recorded:
                problem = "an off-shape payload was recorded as a turn"
            if sum(1 for r in caplog.records if r.exc_info) != traces:
                problem = "a traceback was logged"
            if case.off_shape:
                off_files.update(case.files)
            if problem:
                failures.append(f"seed {seed} ({case.kind}: {case.what}): {problem}")
    await slack.settle()
    downloaded = {path.split("/")[2].split("-")[-1] for path, _ in slack.fake.downloads}
    if leaked := downloaded & off_files:
        failures.append(f"files of off-shape payloads downloaded: {sorted(leaked)}")
    traced = [r.getMessage() for r in caplog.records if r.exc_info]
    failures += [f"traceback after the run: {line}" for line in traced]
    assert not failures, "\n".join(failures[:20])
    if CASES >= 100:  # the mix stays meaningful
        assert min(counts.values()) >= CASES // 5, counts
    at = payloads.ts()
    await slack.event(payloads.mention("still there?", at=at))
    await slack.settle()
    answers = [m.section_text() for m in slack.fake.thread(CHANNEL, at)]
    assert any("still there?" in text for text in answers), answers


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_fuzzed_slack_requests_never_crash_bill_or_go_unanswered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    caplog.set_level(logging.INFO)
    # Hundreds of requests from a few members: far over a member's rate, not the point here.
    async with running_slack(
        tmp_path, transport, start_credits=100_000, member_turns_per_minute=0
    ) as slack:
        await _fuzz(slack, caplog)

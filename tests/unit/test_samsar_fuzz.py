"""Seeded, bounded fuzzing of Samsar completion answers through the real SamsarClient: mangled
JSON shapes, odd types, missing fields, broken pictures, odd statuses and headers. Every case
ends as a usable Completion or a BotError, never another exception.

Each case has its own seed, printed on failure. Re-run one case with
`SAMSAR_FUZZ_SEED=<seed> SAMSAR_FUZZ_CASES=1 pytest tests/unit/test_samsar_fuzz.py`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
from dataclasses import dataclass
from typing import Any

import httpx

from bots import texts
from core.errors import BotError
from core.models import Completion, CompletionRequest, ImageProblem
from core.pictures import Verdict, check_picture
from core.samsar.retry import RetryPolicy
from tests.unit.samsar_rig import KEY, USER, MakeRig, b64, picture, rigs

SEED = int(os.environ.get("SAMSAR_FUZZ_SEED", "1207"))
CASES = int(os.environ.get("SAMSAR_FUZZ_CASES", "300"))
MARKER = "FUZZ-SAMSAR-SAYS"  # in every error text Samsar sends: members must never read it
DEEP = "__deep__"  # replaced by a deeply nested array in the serialised body
REQUEST = CompletionRequest("sess-1", "draw a cat and tell me about it")
PNG = picture("PNG")
JPEG = picture("JPEG")

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -5,
    1e308,
    -1e308,
    3.5,
    "",
    " ",
    "x" * 100_000,
    "\u202e\u0000\ud7ff\uffff emoji 🐈",
    [],
    [None],
    {},
    {"type": "image_generation_call"},
    [1, "two", {"three": 3}],
    DEEP,
]
ODD_RESULTS = [
    b64(PNG),
    b64(JPEG),
    b64(PNG[: len(PNG) // 2]),
    b64(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64),
    b64(b"GIF89a" + b"\x00" * 40),
    b64(b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\xff" * 50),
    "not base64 at all!",
    b64(PNG)[:-3],
    " \n".join([b64(PNG)[:20], b64(PNG)[20:]]),
    "",
]
ODD_HEADERS = [
    "-5",
    "-0",
    "1e309",
    "NaN",
    "inf",
    "",
    "  7  ",
    "1_000",
    "9" * 5_000,
    "0x10",
    "3.000000001",
    "١٢",
    "12 credits",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 01 Jan 99999 00:00:00 GMT",
    "Mon, 99 Foo 2020 99:99:99 GMT",
]
STATUSES = [200] * 12 + [201, 204, 302, 400, 401, 402, 403, 404, 409, 413, 418, 422, 429, 500]
STATUSES += [502, 503, 504, 599]


def valid_body() -> dict[str, Any]:
    """A completion as Samsar sends it: text, a reasoning item, a picture."""
    return {
        "id": "resp_1",
        "object": "response",
        "output_text": "Here is your cat.",
        "output": [
            {"type": "reasoning", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Here is your cat."}],
            },
            {
                "type": "image_generation_call",
                "status": "completed",
                "result": b64(PNG),
                "revised_prompt": "a cat",
            },
        ],
        "usage": {"input_tokens": 10, "output_tokens": 20},
    }


def _spots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the JSON tree (the root is the empty path)."""
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _spots(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _spots(child, (*path, index))
    return found


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return root


def _delete(root: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return root
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return root


def mangle(rng: random.Random, body: Any) -> Any:
    """One random change to the body."""
    spots = _spots(body)
    path = rng.choice(spots)
    move = rng.randrange(7)
    if move == 0:
        return _set(body, path, copy.deepcopy(rng.choice(ODD_VALUES)))
    if move == 1 and path:
        return _delete(body, path)
    if move == 2 and isinstance(body, dict) and isinstance(body.get("output"), list):
        items = body["output"]
        if items:
            items.extend(copy.deepcopy(rng.choice(items)) for _ in range(rng.randrange(1, 30)))
        return body
    if move == 3:
        calls = [p for p in spots if p and p[-1] == "result"]
        if calls:
            return _set(body, rng.choice(calls), rng.choice(ODD_RESULTS))
        return body
    if move == 4:
        return _set(body, path, [copy.deepcopy(_get(body, path))])  # wrapped in a list
    if move == 5 and isinstance(body, dict):
        body[rng.choice(["type", "status", "result", "content", "text"])] = rng.choice(ODD_VALUES)
        return body
    return _set(body, path, rng.choice(["message", "image_generation_call", "reasoning", 7]))


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


@dataclass
class Case:
    """One fuzzed answer: status, header pairs and body bytes."""

    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes

    def response(self) -> httpx.Response:
        """The httpx answer to serve, its body read (and decoded) by the client as on the wire."""
        stream = httpx.ByteStream(self.content)
        return httpx.Response(self.status, headers=self.headers, stream=stream)


def make_case(rng: random.Random) -> Case:
    """A mangled completion answer."""
    status = rng.choice(STATUSES)
    body: Any = valid_body()
    if status >= 300:
        body = {"message": f"{MARKER} refused <!channel>", "error": {"message": MARKER}}
    for _ in range(rng.randint(0, 5)):
        body = mangle(rng, body)
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5)
    depth = rng.choice([10, 1000, 100_000])
    text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    content = text.encode("utf-8")
    roll = rng.random()
    if roll < 0.05:
        content = content[: rng.randrange(len(content) + 1)]
    elif roll < 0.08:
        content = b"\xff\xfe" + content
    elif roll < 0.10:
        content = rng.choice([b"", b"null", b"[]", b'"text"', b"NaN", b"{", b"1e999"])
    headers = [(b"content-type", b"application/json")]
    for name in (b"x-credits-charged", b"x-credits-remaining", b"x-request-id", b"retry-after"):
        if rng.random() < 0.6:
            headers.append((name, rng.choice(ODD_HEADERS).encode("utf-8")))
    if rng.random() < 0.05:
        headers.append((b"content-encoding", b"gzip"))  # a body that is not gzip at all
    return Case(status, headers, content)


def unusable(done: Completion) -> str | None:
    """Why a Completion could not be rendered as is (None: it is usable)."""
    if not isinstance(done.text, str):
        return "text is not a string"
    if done.response_id is not None and not isinstance(done.response_id, str):
        return "response id is not a string"
    for figure in (done.credits.charged, done.credits.remaining):
        if figure is not None and (not math.isfinite(figure) or figure < 0):
            return f"credit figure {figure!r}"
    if not all(isinstance(p, ImageProblem) for p in done.image_problems):
        return "image problems of another type"
    for image in done.images:
        if check_picture(image.data) is Verdict.BROKEN:
            return "a broken picture was kept"
    texts.credits_line(done.credits)
    texts.image_problems_line(done.image_problems, done.credits)
    return None


async def judge(rig: MakeRig, case: Case) -> tuple[str, str | None]:
    """("completion" or "error", what went wrong or None) for one case."""
    r = rig(case.response(), policy=RetryPolicy(attempts=2))
    try:
        done = await r.client.complete(USER, REQUEST, idempotency_key=KEY)
    except BotError as exc:
        said = texts.describe(exc)
        return "error", f"Samsar's words reach the member: {said!r}" if MARKER in said else None
    return "completion", unusable(done)


async def test_mangled_completion_answers_end_as_a_completion_or_a_bot_error() -> None:
    failures: list[str] = []
    outcomes = {"completion": 0, "error": 0}
    async with rigs() as rig:
        for number in range(CASES):
            seed = SEED + number
            try:
                kind, problem = await judge(rig, make_case(random.Random(seed)))
            except Exception as exc:  # the property under test: nothing else escapes
                failures.append(f"seed {seed}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            outcomes[kind] += 1
            if problem is not None:
                failures.append(f"seed {seed}: {problem}")
    assert not failures, "\n".join(failures[:20])
    if CASES >= 100:  # the mix stays meaningful: both outcomes happen often
        assert min(outcomes.values()) >= CASES // 10, outcomes

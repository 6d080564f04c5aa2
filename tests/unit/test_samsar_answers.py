"""Odd Samsar answers: failed or broken pictures, unknown items, odd credit figures. The good
part of an answer is never lost, and what is missing is said with what it cost."""

from __future__ import annotations

import logging
import random
import struct
import zlib
from typing import Any

import httpx
import pytest
from PIL import Image

from bots import texts
from core.errors import MalformedResponse
from core.models import CompletionRequest, Credits, ImageProblem
from core.pictures import MAX_PIXELS, Verdict, check_picture, open_picture
from tests.unit.samsar_rig import KEY, USER, MakeRig, b64, ok, picture, raises

PNG = picture("PNG")
REQUEST = CompletionRequest("sess-1", "draw a cat")


def png_claiming(width: int, height: int, padding: int = 0) -> bytes:
    """A well-formed PNG header claiming `width`×`height`, with a tiny (short) pixel stream:
    what a decompression bomb looks like from the outside (`padding` bytes of text make it
    as large a file as wanted)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + (chunk(b"tEXt", b"Comment\x00" + b"x" * padding) if padding else b"")
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


async def complete(rig: MakeRig, body: dict[str, Any], **headers: str) -> Any:
    r = rig(ok(body, headers=headers))
    return await r.client.complete(USER, REQUEST, idempotency_key=KEY)


# --- 12.7: an image call without an image -------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        {"type": "image_generation_call", "status": "failed", "result": None},
        {"type": "image_generation_call", "status": "failed"},
        {"type": "image_generation_call", "status": "incomplete", "result": ""},
    ],
)
async def test_an_image_call_without_an_image_is_a_not_made_problem(
    rig: MakeRig, call: dict[str, Any]
) -> None:
    body = {"output_text": "Here is your cat!", "output": [call]}
    done = await complete(rig, body, **{"x-credits-charged": "6", "x-credits-remaining": "94"})
    assert done.text == "Here is your cat!"
    assert done.images == ()
    assert done.image_problems == (ImageProblem.NOT_MADE,)
    line = texts.image_problems_line(done.image_problems, done.credits)
    assert line == (
        "The image could not be made: Samsar reported a failure. This answer still used 6 credits."
    )


def test_the_problem_line_counts_and_leaves_out_an_unknown_charge() -> None:
    problems = (ImageProblem.NOT_MADE, ImageProblem.NOT_MADE, ImageProblem.UNREADABLE)
    assert texts.image_problems_line(problems, Credits()) == (
        "2 images could not be made: Samsar reported a failure. "
        "Samsar sent an image the bot could not read, so it is not shown."
    )
    assert texts.image_problems_line((), Credits(charged=3)) is None
    one = texts.image_problems_line((ImageProblem.UNREADABLE,), Credits(charged=1))
    assert one is not None and one.endswith("This answer still used 1 credit.")


# --- 12.8: lenient output items -----------------------------------------------------------

GOOD_MESSAGE = {"type": "message", "content": [{"type": "output_text", "text": "A good answer."}]}


@pytest.mark.parametrize(
    "odd",
    [
        {"type": "web_search_call", "result": {"nested": [1, 2]}},
        {"type": "mystery", "result": 12, "content": "not a list"},
        {"type": 7},
        {"content": [{"text": 5}]},
        "a bare string",
        None,
        [1, 2, 3],
        {"type": "message", "content": {"text": "content is an object"}},
        {"type": "message", "content": [None, {"text": ["x"]}, 3]},
        {"type": "image_generation_call", "result": {"b64": "…"}, "revised_prompt": 5},
    ],
)
async def test_one_odd_output_item_does_not_lose_the_answer(rig: MakeRig, odd: object) -> None:
    body = {"id": "resp_1", "output": [GOOD_MESSAGE, odd, {"type": "reasoning"}]}
    done = await complete(rig, body)
    assert done.text == "A good answer."
    assert done.response_id == "resp_1"
    assert done.images == ()


async def test_an_odd_result_counts_as_an_unreadable_picture(rig: MakeRig) -> None:
    body = {"output": [GOOD_MESSAGE, {"type": "image_generation_call", "result": [1]}]}
    done = await complete(rig, body)
    assert done.text == "A good answer."
    assert done.image_problems == (ImageProblem.UNREADABLE,)


async def test_odd_top_level_fields_fall_back_to_what_is_readable(
    rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="core.samsar")
    body = {"id": 42, "output_text": ["not", "text"], "output": [GOOD_MESSAGE]}
    done = await complete(rig, body)
    assert (done.response_id, done.text) == (None, "A good answer.")
    [record] = [r for r in caplog.records if r.getMessage() == "completion parts skipped"]
    assert record.__dict__["skipped"] == ["output_text:list", "id:int"]


async def test_skipped_items_are_logged_by_type_never_by_content(
    rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="core.samsar")
    body = {"output": [GOOD_MESSAGE, {"type": "mystery", "result": "SECRET-CONTENT"}]}
    await complete(rig, body)
    [record] = [r for r in caplog.records if r.getMessage() == "completion parts skipped"]
    assert record.__dict__["skipped"] == ["output[1]:mystery"]
    assert "SECRET-CONTENT" not in repr(vars(record))


@pytest.mark.parametrize(
    "body",
    [
        {"output": "not a list"},
        {"output": [{"type": "mystery"}]},
        {"output_text": 5},
    ],
)
async def test_nothing_readable_at_all_is_a_malformed_response(
    rig: MakeRig, body: dict[str, Any]
) -> None:
    r = rig(ok(body, headers={"x-request-id": "req-3"}))
    error = await raises(MalformedResponse, r.client.complete(USER, REQUEST, idempotency_key=KEY))
    assert error.request_id == "req-3"


async def test_an_empty_answer_is_an_empty_completion_not_an_error(rig: MakeRig) -> None:
    done = await complete(rig, {"output_text": "", "output": [{"type": "reasoning"}]})
    assert (done.text, done.images, done.image_problems) == ("", (), ())


# --- 12.9: pictures are decode-checked ----------------------------------------------------

RANDOM_BEHIND_PNG = b"\x89PNG\r\n\x1a\n" + random.Random(12).randbytes(3 * 1024 * 1024)


@pytest.mark.parametrize(
    "result",
    [
        b64(RANDOM_BEHIND_PNG),
        b64(PNG[: len(PNG) // 2]),  # truncated
        b64(PNG[:-20] + b"\x00" * 20),  # a broken end
        b64(picture("JPEG")[:40]),
        b64(b"\x89PNG\r\n\x1a\n"),
        "not*base64!",
        b64(b"plain text, no picture"),
    ],
)
async def test_a_broken_picture_is_left_out_and_said_the_rest_is_kept(
    rig: MakeRig, result: str
) -> None:
    body = {
        "output_text": "Two pictures.",
        "output": [
            {"type": "image_generation_call", "result": result},
            {"type": "image_generation_call", "result": b64(PNG), "revised_prompt": "a cat"},
        ],
    }
    done = await complete(rig, body, **{"x-credits-charged": "12"})
    assert done.text == "Two pictures."
    assert [(i.data, i.revised_prompt) for i in done.images] == [(PNG, "a cat")]
    assert done.image_problems == (ImageProblem.UNREADABLE,)
    line = texts.image_problems_line(done.image_problems, done.credits)
    assert line == (
        "Samsar sent an image the bot could not read, so it is not shown. "
        "This answer still used 12 credits."
    )


def test_a_good_picture_of_each_format_passes_the_check() -> None:
    for fmt in ("PNG", "JPEG", "WEBP", "GIF"):
        assert check_picture(picture(fmt)) is Verdict.GOOD, fmt


def test_random_bytes_behind_a_png_signature_are_broken() -> None:
    assert check_picture(RANDOM_BEHIND_PNG) is Verdict.BROKEN


# --- 8.13: decompression bombs are bounded, not fatal -------------------------------------


def test_a_picture_past_the_pixel_bound_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever an earlier caller left in Pillow's global, the bound is set again explicitly.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    bomb = png_claiming(10_000, 10_000)
    with pytest.raises(Image.DecompressionBombError):
        open_picture(bomb)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    assert check_picture(bomb) is Verdict.UNCHECKED


async def test_a_huge_generated_picture_is_delivered_as_is(rig: MakeRig) -> None:
    bomb = png_claiming(10_000, 10_000)
    body = {"output": [{"type": "image_generation_call", "result": b64(bomb)}]}
    done = await complete(rig, body)
    assert [i.data for i in done.images] == [bomb]
    assert done.image_problems == ()


# --- 12.11: odd credit figures ------------------------------------------------------------


async def test_a_negative_balance_is_shown_as_zero_and_logged(
    rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="core.samsar")
    done = await complete(
        rig, {"output_text": "hi"}, **{"x-credits-charged": "7", "x-credits-remaining": "-5"}
    )
    assert done.credits == Credits(charged=7, remaining=0)
    assert texts.credits_line(done.credits) == "7 credits used · 0 left"
    assert any(r.getMessage() == "negative credits remaining" for r in caplog.records)


async def test_a_negative_balance_in_a_body_is_zero_and_a_negative_charge_unknown(
    rig: MakeRig,
) -> None:
    r = rig(ok({"remainingCredits": -3}, headers={"x-credits-charged": "-2"}))
    balance = await r.client.credits(USER)
    assert balance.remaining == 0
    assert balance.credits.charged is None
    assert texts.balance_text(balance.remaining) == "You have 0 credits."


async def test_infinite_numbers_in_a_body_are_malformed(rig: MakeRig) -> None:
    r = rig(httpx.Response(200, content=b'{"remainingCredits": 1e999}'))
    await raises(MalformedResponse, r.client.credits(USER))

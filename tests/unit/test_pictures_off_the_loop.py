"""Big pictures never weigh on the event loop: a member's pictures are base64-encoded a slice
at a time as the request is sent, with the loop running between slices; pictures cross to and
from the worker processes in parcels (files), never pickled; Discord sends a picture that fits
nowhere, and fits a big one in a worker process."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
import os
import pickle
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bots.discord import pictures
from bots.discord.pictures import Fitted, fit, fit_image, fit_parcel
from core.models import CompletionRequest, ImageOptions, InputImage
from core.offload import BIG, Parcel, parcel_directory, shutdown
from core.samsar import wire
from core.samsar.completion import decode_completion_file
from core.samsar.retry import RetryPolicy
from tests.unit.samsar_rig import KEY, USER, MakeRig, b64, ok, picture

WIRE_USER = wire.ExternalUser.from_identity(USER)
SLICE = wire.PicturesBody.SLICE


def noisy_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def left_behind() -> list[Path]:
    return list(Path(parcel_directory()).iterdir())


async def sent(content: bytes | wire.PicturesBody) -> bytes:
    assert isinstance(content, wire.PicturesBody)
    return b"".join([piece async for piece in content])


# --- a member's pictures, sent as they are encoded --------------------------------------


@pytest.mark.parametrize(
    "sizes",
    [(0,), (1,), (2,), (3,), (SLICE - 1,), (SLICE,), (SLICE + 1, 2 * SLICE + 2, 5)],
)
async def test_a_body_with_pictures_is_sent_as_the_bytes_it_always_was(
    sizes: tuple[int, ...],
) -> None:
    images = tuple(
        InputImage(os.urandom(size), 'image/x-"odd"é\n', f"{n}.bin") for n, size in enumerate(sizes)
    )
    images += (InputImage(picture("PNG"), "image/jpeg", "real.png"),)
    request = CompletionRequest(
        "sess-1",
        'draw "this" — ünïcödé\n\\ and a stand-in look-alike: 00ff:0',
        images=images,
        developer_prompt="Be brief.",
        image_tool=ImageOptions(),
    )
    whole = wire.CompletionBody.build(request, WIRE_USER).to_json()
    content = wire.completion_content(request, WIRE_USER)
    assert await sent(content) == whole
    assert isinstance(content, wire.PicturesBody) and len(content) == len(whole)
    assert await sent(content) == whole  # a second attempt sends the same bytes


async def test_a_body_without_pictures_is_plain_bytes() -> None:
    request = CompletionRequest("sess-1", "hello")
    content = wire.completion_content(request, WIRE_USER)
    assert content == wire.CompletionBody.build(request, WIRE_USER).to_json()


async def test_the_event_loop_runs_between_the_slices_of_a_picture() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    image = InputImage(os.urandom(4 * SLICE), "image/png", "big.png")
    content = wire.completion_content(CompletionRequest("s", "hi", images=(image,)), WIRE_USER)
    assert isinstance(content, wire.PicturesBody)
    running = asyncio.create_task(ticker())
    seen: list[int] = []
    try:
        await asyncio.sleep(0)
        async for piece in content:
            if len(piece) == 4 * SLICE // 3:  # one slice of the picture's base64
                seen.append(ticks)
    finally:
        running.cancel()
    assert len(seen) == 4
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))


async def test_a_retried_completion_sends_the_same_picture_bytes_with_their_length(
    rig: MakeRig,
) -> None:
    image = InputImage(os.urandom(SLICE + 7), "image/png", "big.png")
    request = CompletionRequest("sess-1", "look", images=(image,))
    r = rig(httpx.Response(500, json={"error": "busy"}), ok(), policy=RetryPolicy(attempts=2))
    await r.client.complete(USER, request, idempotency_key=KEY)
    whole = wire.CompletionBody.build(request, WIRE_USER).to_json()
    assert [sent.content for sent in r.requests] == [whole, whole]
    for sent_request in r.requests:
        assert sent_request.headers["content-length"] == str(len(whole))
        assert "transfer-encoding" not in sent_request.headers


# --- pictures cross to and from the worker processes in files ---------------------------


def test_a_worker_sends_each_picture_back_in_a_parcel(tmp_path: Path) -> None:
    drawn = noisy_png(300)
    call = {"type": "image_generation_call", "result": b64(drawn), "revised_prompt": "noise"}
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"id": "resp_1", "output": [call]}))
    decoded = decode_completion_file(str(body))
    assert not isinstance(decoded, str)
    read, parcels, problems = decoded
    # What goes back through the pool's pipe is small: the picture is not pickled with it.
    assert len(pickle.dumps(decoded)) < len(drawn) // 10
    [(image, parcel)] = parcels
    assert (image.data, image.revised_prompt, problems) == (b"", "noise", [])
    assert read.response_id == "resp_1" and read.image_calls[0].result is None
    assert parcel.unpack() == drawn
    assert not Path(parcel.path).exists()


def test_parcels_nobody_read_go_with_the_workers() -> None:
    forgotten = Parcel.pack(b"a picture whose reader was cancelled")
    assert Path(forgotten.path).exists()
    shutdown()
    assert not Path(forgotten.path).exists()


# --- Discord's fitting --------------------------------------------------------------------


def refuse(parcel: Parcel, filename: str, limit: int) -> tuple[Fitted, Parcel]:
    raise AssertionError("a picture that fits is sent nowhere")


def fit_and_sign(parcel: Parcel, filename: str, limit: int) -> tuple[Fitted, Parcel]:
    """fit_parcel, with the id of the process that ran it as the note."""
    fitted, back = fit_parcel(parcel, filename, limit)
    return dataclasses.replace(fitted, note=f"pid:{os.getpid()}"), back


async def test_a_picture_that_fits_is_sent_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pictures, "fit_parcel", refuse)
    data = noisy_png(700)
    assert await fit(data, "a.png", len(data)) == Fitted(data, "a.png")
    assert not left_behind()


async def test_a_big_picture_is_fitted_in_a_worker_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = noisy_png(700)
    assert len(data) >= BIG
    monkeypatch.setattr(pictures, "fit_parcel", fit_and_sign)
    fitted = await fit(data, "noise.png", 200_000)
    assert fitted.note is not None and fitted.note != f"pid:{os.getpid()}"
    assert fitted.data == fit_image(data, "noise.png", 200_000).data
    assert fitted.filename == "noise.jpg"
    assert not left_behind()

"""`/imagine`: the sandbox's picture as an attachment, fitted under the limit, with progress."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest
from PIL import Image

from bots.discord import translate
from bots.discord.pictures import CannotFit, fit_image
from core.models import ThreadRef
from tests.e2e.discord.conftest import ALICE, Harness, option, running_harness

ORIGINAL = "/webhooks/{app_id}/{token}/messages/@original"


def _last_image(harness: Harness) -> bytes:
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    assert sessions and sessions[-1].last_image is not None
    return sessions[-1].last_image


async def test_imagine_posts_the_sandbox_png_as_one_attachment(harness: Harness) -> None:
    asked = await harness.slash("imagine", option("prompt", "a red fox"), option("size", "640x480"))
    answer = await harness.answer(asked)
    assert len(answer.files) == 1 and answer.files[0] == _last_image(harness)
    attachment = answer.payload["attachments"][0]
    assert attachment["filename"].endswith(".png")
    assert "a red fox" in answer.content  # the revised prompt is the caption
    with Image.open(io.BytesIO(answer.files[0])) as picture:
        assert picture.format == "PNG" and picture.size == (640, 480)
    assert harness.charged(ALICE) == 6  # text + image, once


async def test_imagine_in_a_channel_opens_a_thread_where_the_picture_can_be_edited(
    harness: Harness,
) -> None:
    fake = harness.fake
    asked = await harness.slash("imagine", option("prompt", "a red fox"))
    answer = await harness.answer(asked)
    assert len(answer.files) == 1
    thread = (await fake.wait_for(fake.threads, what="a thread"))[0]
    assert int(thread["id"]) == int(answer.payload["id"])  # opened from the picture
    thread_id = int(thread["id"])
    await harness.say("make it blue", channel_id=thread_id)
    pictures = await fake.wait_for(
        lambda: [m for m in fake.replies(thread_id) if m.files], what="the edited picture"
    )
    assert len(pictures[0].files) == 1 and pictures[0].files[0] == _last_image(harness)
    sessions = harness.sandbox.state.sessions_of("discord", f"discord:{ALICE['id']}")
    assert len(sessions) == 1 and sessions[0].images_generated == 2
    service = harness.bot.service
    in_thread = ThreadRef("discord", str(fake.guild_id), str(fake.channel_id), str(thread_id))
    carried = await service.session_of(in_thread)
    assert carried is not None and carried.session_id == sessions[0].session_id
    pending = translate.pending(fake.guild_id, fake.channel_id, f"imagine-{asked['id']}")
    assert await service.session_of(pending) is None  # nothing left behind


async def test_a_picture_over_the_upload_limit_is_shrunk_under_it_and_said(
    harness: Harness,
) -> None:
    limit = 150_000
    asked = await harness.slash(
        "imagine",
        option("prompt", "static #noise"),
        option("size", "1024x1024"),
        upload_limit=limit,
    )
    answer = await harness.answer(asked)
    assert len(_last_image(harness)) > limit  # the sandbox's picture did not fit as is
    assert len(answer.files) == 1 and len(answer.files[0]) <= limit
    with Image.open(io.BytesIO(answer.files[0])) as picture:
        assert picture.format == "JPEG"
    assert "to fit Discord's 146 KB upload limit" in answer.content
    assert all(r.status < 400 for r in harness.fake.requests)


async def test_a_slow_samsar_still_gets_the_deferral_out_at_once_and_shows_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_harness(tmp_path, monkeypatch, status_every=2.0) as harness:
        harness.sandbox.state.inject("assistant/completion", delay=10)
        started = time.monotonic()
        asked = await harness.slash("imagine", option("prompt", "a slow sunrise"))
        state = harness.fake.interaction(asked)
        await harness.fake.wait_for(lambda: state.acknowledged_at, within=3, what="the deferral")
        assert state.acknowledged_at is not None and state.acknowledged_at - started < 3
        answer = await harness.answer(asked, within=20, when=lambda m: bool(m.files))
        assert len(answer.files) == 1
        statuses = [
            r.json.get("content", "")
            for r in harness.fake.calls("PATCH", ORIGINAL)
            if isinstance(r.json, dict) and "Generating" in str(r.json.get("content"))
        ]
        assert len(statuses) >= 3
        seconds = [int(s.split("…")[1].split()[0]) for s in statuses]
        assert seconds == sorted(seconds) and seconds[-1] >= 6


def _noise_png(side: int) -> bytes:
    data = random.Random(side).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), data).save(out, format="PNG")
    return out.getvalue()


def test_a_picture_that_fits_is_untouched() -> None:
    data = _noise_png(32)
    assert fit_image(data, "a.png", len(data)).data == data


def test_a_compressible_picture_is_re_encoded_at_full_size() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (800, 600), (10, 200, 30, 128)).save(out, format="PNG", compress_level=0)
    fitted = fit_image(out.getvalue(), "flat.png", 100_000)
    assert fitted.filename == "flat.jpg" and len(fitted.data) <= 100_000
    assert fitted.note is not None and "Re-encoded" in fitted.note
    with Image.open(io.BytesIO(fitted.data)) as picture:
        assert picture.size == (800, 600)


def test_noise_is_downscaled_until_it_fits() -> None:
    fitted = fit_image(_noise_png(512), "noise.png", 40_000)
    assert len(fitted.data) <= 40_000 and fitted.note is not None and "Downscaled" in fitted.note
    with Image.open(io.BytesIO(fitted.data)) as picture:
        assert picture.format == "JPEG" and picture.width < 512


def test_bytes_that_are_no_picture_cannot_fit() -> None:
    with pytest.raises(CannotFit):
        fit_image(b"x" * 1000, "broken.png", 10)

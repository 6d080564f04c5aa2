"""Big completion bodies are parsed and their pictures decoded in a worker process, not on the
event loop's thread; small ones stay in this process."""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image

import core.samsar.client as client_module
from core.models import CompletionRequest
from core.offload import BIG, parcel_directory
from core.samsar.completion import Parcelled, decode_completion_file
from core.samsar.retry import RetryPolicy
from tests.unit.samsar_rig import KEY, USER, b64, ok, rigs

REQUEST = CompletionRequest("sess-1", "draw")


def decode_and_sign(path: str) -> Parcelled | str:
    """decode_completion_file, with the id of the process that ran it as the response id."""
    decoded = decode_completion_file(path)
    assert not isinstance(decoded, str)
    read, images, problems = decoded
    return dataclasses.replace(read, response_id=f"pid:{os.getpid()}"), images, problems


@pytest.fixture(autouse=True)
def own_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spilled bodies go to a directory of this test's own: other runs on the machine write
    theirs to the shared one, where they would pass for this test's leftovers."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def spilled() -> list[Path]:
    """Bodies and parcels left in the temporary directory."""
    bodies = list(Path(tempfile.gettempdir()).glob("samsar-body-*"))
    return bodies + list(Path(parcel_directory()).iterdir())


def noisy_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def body(picture: bytes) -> dict[str, object]:
    call = {"type": "image_generation_call", "result": b64(picture), "status": "completed"}
    return {"id": "resp_1", "output": [call]}


@pytest.mark.parametrize(("side", "elsewhere"), [(700, True), (16, False)])
async def test_big_pictures_are_decoded_in_a_worker_process(
    monkeypatch: pytest.MonkeyPatch, side: int, elsewhere: bool
) -> None:
    picture = noisy_png(side)
    assert (len(b64(picture)) >= BIG) is elsewhere
    monkeypatch.setattr(client_module, "decode_completion_file", decode_and_sign)
    async with rigs() as rig:
        done = await rig(ok(body(picture)), policy=RetryPolicy(attempts=1)).client.complete(
            USER, REQUEST, idempotency_key=KEY
        )
    [image] = done.images
    assert image.data == picture
    if elsewhere:
        assert done.response_id is not None and done.response_id != f"pid:{os.getpid()}"
    else:  # parsed here, by the ordinary reader
        assert done.response_id == "resp_1"
    assert not spilled()  # the spilled body is gone

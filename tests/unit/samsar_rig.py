"""A SamsarClient over httpx.MockTransport with scripted answers, and real little pictures."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from core.errors import SamsarError
from core.models import ExternalIdentity
from core.samsar.client import SamsarClient
from core.samsar.retry import RetryPolicy

API_KEY = "sk-live-SECRET-0123456789"
BASE = "https://api.samsar.test/v1"
KEY = "turn-0001"

USER = ExternalIdentity(
    provider="discord",
    external_user_id="123",
    external_company_id="guild-9",
    username="ana",
    display_name="Ana María ~*",
    avatar_url="https://cdn.example/a.png?x=1&y=2",
    metadata={"platform": "discord"},
)

# one 2xx body that satisfies every route's required fields
EVERYTHING = {
    "session_id": "sess-1",
    "remainingCredits": 42,
    "system_prompt": "stored",
    "url": "https://checkout.example/pay",
    "credits": 500,
    "amountUsd": 5,
    "loginToken": "tok",
    "loginUrl": "https://studio.example/login?t=tok",
    "expiresAt": "2030-01-01T00:00:00Z",
    "expiresInSeconds": 600,
    "id": "resp_1",
    "output_text": "hi",
}

Answer = httpx.Response | Exception


def ok(body: Any = None, *, headers: dict[str, str] | None = None) -> httpx.Response:
    """A 200 JSON answer."""
    return httpx.Response(200, json=EVERYTHING if body is None else body, headers=headers)


def picture(fmt: str = "PNG", size: tuple[int, int] = (6, 4)) -> bytes:
    """A real, decodable little picture in `fmt` (PNG, JPEG, WEBP, GIF)."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(out, format=fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    """Base64 text, as an `image_generation_call` result carries a picture."""
    return base64.b64encode(data).decode("ascii")


def fresh(answer: httpx.Response) -> httpx.Response:
    """A new response with the same status, headers and body bytes (as sent, before any
    decoding): a server answers each request anew, and a body can be read only once."""
    stream = answer.stream
    assert isinstance(stream, httpx.ByteStream), "the rig serves bodies given in full"
    raw = b"".join(stream)
    return httpx.Response(answer.status_code, headers=answer.headers, stream=httpx.ByteStream(raw))


@dataclass
class Rig:
    """A client wired to a scripted Samsar; `waits` are the injected sleep's calls."""

    client: SamsarClient
    requests: list[httpx.Request]
    waits: list[float]


MakeRig = Callable[..., Rig]


@asynccontextmanager
async def rigs() -> AsyncIterator[MakeRig]:
    """Build rigs: answers are served in order, the last one repeats."""
    opened: list[httpx.AsyncClient] = []

    def make(*answers: Answer, policy: RetryPolicy | None = None, base: str = BASE) -> Rig:
        queue = list(answers) or [ok()]
        requests: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, Exception):
                raise answer
            return fresh(answer)

        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        opened.append(http)
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        client = SamsarClient(API_KEY, base, http=http, retry=policy or RetryPolicy(), sleep=sleep)
        return Rig(client=client, requests=requests, waits=waits)

    try:
        yield make
    finally:
        for http in opened:
            await http.aclose()


async def raises(cls: type[SamsarError], call: Awaitable[object]) -> SamsarError:
    """Await `call`, expect exactly `cls`, and check the API key is nowhere in the error."""
    with pytest.raises(SamsarError) as info:
        await call
    error = info.value
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    for text in (str(error), repr(error), error.message):
        assert API_KEY not in text
    return error

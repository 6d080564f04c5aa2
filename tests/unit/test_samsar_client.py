"""SamsarClient against httpx.MockTransport: the wire of samsar-js 0.48.48, errors, retries."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from core.errors import (
    AuthenticationFailed,
    BadRequest,
    InsufficientCredits,
    MalformedResponse,
    NotFound,
    RateLimited,
    SamsarError,
    SamsarTimeout,
    SamsarUnreachable,
    UpstreamError,
)
from core.models import (
    Balance,
    CheckoutLink,
    CompletionRequest,
    Credits,
    ExternalIdentity,
    ImageOptions,
    InputImage,
    LoginLink,
)
from core.samsar.client import SamsarClient
from core.samsar.images import data_url, detect_image_format
from core.samsar.retry import RetryPolicy
from tests.unit.samsar_rig import (
    API_KEY,
    BASE,
    KEY,
    USER,
    MakeRig,
    b64,
    ok,
    picture,
    raises,
)

# normalizeExternalUserIdentity(USER), key order as samsar-js writes it
USER_JSON = {
    "provider": "discord",
    "external_user_id": "123",
    "external_company_id": "guild-9",
    "username": "ana",
    "display_name": "Ana María ~*",
    "avatar_url": "https://cdn.example/a.png?x=1&y=2",
    "metadata": {"platform": "discord"},
}

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
PNG_B64 = "iVBORw0KGgoAAAAAAAAAAA=="
JPEG_B64 = "/9j/4AAAAAA="  # ff d8 ff e0 00 00 00 00
WEBP_B64 = "UklGRgAAAABXRUJQVlA4IA=="  # RIFF....WEBPVP8_
GIF_B64 = "R0lGODlhAQA="  # GIF89a 01 00
REAL_PNG = picture("PNG")


def compact(value: Any) -> bytes:
    """What JSON.stringify writes for a JS object literal with these keys in this order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# --- requests: identical to samsar-js 0.48.48 ------------------------------------------

Call = Callable[[SamsarClient], Awaitable[object]]
ROUTES: list[tuple[str, Call, str, dict[str, Any]]] = [
    (
        "external_users/session",
        lambda c: c.bootstrap_user(USER, idempotency_key=KEY),
        "POST",
        {"external_user": USER_JSON},
    ),
    (
        "external_users/utils/assistant_session",
        lambda c: c.create_assistant_session(USER, idempotency_key=KEY),
        "POST",
        {"external_user": USER_JSON},
    ),
    (
        "external_users/assistant/completion",
        lambda c: c.complete(USER, CompletionRequest("sess-1", "hello"), idempotency_key=KEY),
        "POST",
        {"session_id": "sess-1", "input": "hello", "external_user": USER_JSON},
    ),
    (
        "external_users/assistant/set_system_prompt",
        lambda c: c.set_user_prompt(USER, "Be brief.", idempotency_key=KEY),
        "POST",
        {"system_prompt": "Be brief.", "external_user": USER_JSON},
    ),
    (
        "external_users/assistant/set_system_prompt",
        lambda c: c.set_user_prompt(USER, None, idempotency_key=KEY),
        "POST",
        {"system_prompt": None, "external_user": USER_JSON},
    ),
    (
        "external_users/credits/recharge",
        lambda c: c.recharge_link(USER, 500, idempotency_key=KEY),
        "POST",
        {"external_user": USER_JSON, "input": {"credits": 500}},
    ),
    (
        "external_users/credits/grant",
        lambda c: c.grant_credits(USER, 25, idempotency_key=KEY),
        "POST",
        {"external_user": USER_JSON, "input": {"credits": 25}},
    ),
    (
        "external_users/create_login_token",
        lambda c: c.login_link(USER, idempotency_key=KEY, redirect="/external/studio"),
        "POST",
        {"external_user": USER_JSON, "redirect": "/external/studio"},
    ),
    (
        "external_users/create_login_token",
        lambda c: c.login_link(USER, idempotency_key=KEY),
        "POST",
        {"external_user": USER_JSON},
    ),
    (
        "assistant/set_system_prompt",
        lambda c: c.set_account_prompt("Be kind.", idempotency_key=KEY),
        "POST",
        {"system_prompt": "Be kind."},
    ),
    (
        "assistant/set_system_prompt",
        lambda c: c.set_account_prompt(None, idempotency_key=KEY),
        "POST",
        {"system_prompt": None},
    ),
]


@pytest.mark.parametrize(
    ("path", "call", "method", "body"), ROUTES, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROUTES)]
)
async def test_post_routes_send_what_samsar_js_sends(
    rig: MakeRig, path: str, call: Call, method: str, body: dict[str, Any]
) -> None:
    r = rig()
    await call(r.client)
    (request,) = r.requests
    assert request.method == method
    assert str(request.url) == f"{BASE}/{path}"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == KEY
    assert request.content == compact(body)


async def test_credits_is_a_get_with_the_identity_as_query(rig: MakeRig) -> None:
    r = rig()
    await r.client.credits(USER)
    (request,) = r.requests
    assert request.method == "GET"
    assert request.url.path == "/v1/external_users/credits"
    # URLSearchParams: '+' for space, '~' escaped, '*' kept; no metadata
    assert request.url.query == (
        b"provider=discord&external_user_id=123&external_company_id=guild-9&username=ana"
        b"&display_name=Ana+Mar%C3%ADa+%7E*&avatar_url=https%3A%2F%2Fcdn.example%2Fa.png"
        b"%3Fx%3D1%26y%3D2"
    )
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "Content-Type" not in request.headers
    assert "Idempotency-Key" not in request.headers
    assert request.content == b""


async def test_identity_is_trimmed_and_empty_values_are_omitted(rig: MakeRig) -> None:
    r = rig()
    sparse = ExternalIdentity(provider=" console ", external_user_id=" u1 ", username="")
    await r.client.credits(sparse)
    await r.client.bootstrap_user(ExternalIdentity("x", "y", metadata={}), idempotency_key=KEY)
    assert r.requests[0].url.query == b"provider=console&external_user_id=u1"
    # samsar-js keeps an empty metadata object (`{}` is truthy in JS)
    assert r.requests[1].content == compact(
        {"external_user": {"provider": "x", "external_user_id": "y", "metadata": {}}}
    )


async def test_completion_with_developer_prompt_images_and_tool(rig: MakeRig) -> None:
    r = rig()
    request = CompletionRequest(
        session_id="sess-1",
        text="draw this",
        images=(InputImage(PNG, "image/jpeg", "a.png"), InputImage(b"\x00" * 6, "image/heic")),
        developer_prompt="Be brief.",
        image_tool=ImageOptions(size="1536x1024", quality="high", format="webp"),
        force_image=True,
        max_output_tokens=50,
        previous_response_id="resp_0",
    )
    await r.client.complete(USER, request, idempotency_key=KEY)
    assert r.requests[0].content == compact(
        {
            "session_id": "sess-1",
            "input": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "draw this"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"},
                        {"type": "input_image", "image_url": "data:image/heic;base64,AAAAAAAA"},
                    ],
                },
            ],
            "tools": [
                {
                    "type": "image_generation",
                    "size": "1536x1024",
                    "quality": "high",
                    "format": "webp",
                }
            ],
            "tool_choice": {"type": "image_generation"},
            "max_output_tokens": 50,
            "previous_response_id": "resp_0",
            "external_user": USER_JSON,
        }
    )


@pytest.mark.parametrize(
    ("request_", "expected_input", "tools"),
    [
        (
            CompletionRequest("s", "hi", developer_prompt="dev"),
            [
                {"role": "developer", "content": "dev"},
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            ],
            {},
        ),
        (
            CompletionRequest("s", "", images=(InputImage(PNG, "image/png"),)),
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"}
                    ],
                }
            ],
            {},
        ),
        (
            CompletionRequest("s", "hi", image_tool=ImageOptions()),
            "hi",
            {
                "tools": [
                    {
                        "type": "image_generation",
                        "size": "1024x1024",
                        "quality": "auto",
                        "format": "png",
                    }
                ],
                "tool_choice": "auto",
            },
        ),
    ],
    ids=["developer-only", "image-only", "tool-auto"],
)
async def test_completion_input_shapes(
    rig: MakeRig, request_: CompletionRequest, expected_input: Any, tools: dict[str, Any]
) -> None:
    r = rig()
    await r.client.complete(USER, request_, idempotency_key=KEY)
    expected = {"session_id": "s", "input": expected_input, **tools, "external_user": USER_JSON}
    assert r.requests[0].content == compact(expected)


async def test_base_url_trailing_slashes_are_trimmed(rig: MakeRig) -> None:
    r = rig(base=BASE + "//")
    await r.client.bootstrap_user(USER, idempotency_key=KEY)
    assert str(r.requests[0].url) == f"{BASE}/external_users/session"
    assert repr(r.client) == f"SamsarClient(base_url='{BASE}')"


async def test_invalid_arguments_send_nothing(rig: MakeRig) -> None:
    r = rig()
    with pytest.raises(ValueError):
        await r.client.recharge_link(USER, 0, idempotency_key=KEY)
    with pytest.raises(ValueError):
        await r.client.credits(ExternalIdentity(provider=" ", external_user_id="1"))
    assert r.requests == []


# --- results ---------------------------------------------------------------------------


async def test_completion_parsing(rig: MakeRig) -> None:
    body = {
        "id": "resp_9",
        "output_text": "Here you go.",
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "image_generation_call", "result": b64(REAL_PNG), "revised_prompt": "a cat"},
            {"type": "image_generation_call", "result": b64(picture("JPEG"))},
            {"type": "image_generation_call", "result": b64(picture("WEBP"))},
            {"type": "image_generation_call", "result": b64(picture("GIF"))},
            {"type": "message", "content": [{"type": "output_text", "text": "ignored"}]},
        ],
        "usage": {"total_tokens": 12},
    }
    headers = {"x-credits-charged": "3.5", "x-credits-remaining": "96.5"}
    r = rig(ok(body, headers=headers))
    done = await r.client.complete(USER, CompletionRequest("s", "hi"), idempotency_key=KEY)
    assert done.response_id == "resp_9"
    assert done.text == "Here you go."
    assert done.credits == Credits(charged=3.5, remaining=96.5)
    assert [(i.mime, i.extension, i.revised_prompt) for i in done.images] == [
        ("image/png", "png", "a cat"),
        ("image/jpeg", "jpeg", None),
        ("image/webp", "webp", None),
        ("image/gif", "gif", None),
    ]
    assert done.images[0].data == REAL_PNG
    assert done.image_problems == ()


async def test_completion_text_falls_back_to_message_parts(rig: MakeRig) -> None:
    body = {
        "output_text": "",
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "Hello, "}]},
            {"type": "reasoning", "content": [{"type": "reasoning_text", "text": "hmm"}]},
            {"type": "image_generation_call", "result": b64(REAL_PNG)},
            {
                "type": "message",
                "content": [{"type": "refusal"}, {"type": "output_text", "text": "world."}],
            },
        ],
    }
    r = rig(ok(body, headers={"x-credits-charged": "lots"}))
    done = await r.client.complete(USER, CompletionRequest("s", "hi"), idempotency_key=KEY)
    assert done.text == "Hello, world."
    assert done.response_id is None
    assert done.credits == Credits(charged=None, remaining=None)


async def test_balances_checkout_and_login_results(rig: MakeRig) -> None:
    headers = {"x-credits-charged": "0", "x-credits-remaining": "41"}
    r = rig(
        ok({"remainingCredits": 42, "external_api_key": "ext-key"}, headers=headers),
        ok({"remainingCredits": None}, headers=headers),
        ok({"remainingCredits": 67.5, "creditsGranted": 25}),
        ok({"url": "https://pay.example/c", "credits": 500, "amountUsd": 5, "currency": "usd"}),
        ok({"loginToken": "t", "loginUrl": "https://studio.example/l", "expiresInSeconds": 600}),
        ok({"session_id": "sess-2", "session_type": "assistant"}),
        ok({"system_prompt": None, "model": "x"}),
    )
    c = r.client
    assert await c.bootstrap_user(USER, idempotency_key=KEY) == Balance(
        remaining=42, credits=Credits(charged=0, remaining=41)
    )
    assert await c.credits(USER) == Balance(remaining=41, credits=Credits(0, 41))
    assert (await c.grant_credits(USER, 25, idempotency_key=KEY)).remaining == 67.5
    assert await c.recharge_link(USER, 500, idempotency_key=KEY) == CheckoutLink(
        url="https://pay.example/c", credits=500, amount_usd=5
    )
    assert await c.login_link(USER, idempotency_key=KEY) == LoginLink(
        url="https://studio.example/l", expires_at=None, expires_in_seconds=600
    )
    assert await c.create_assistant_session(USER, idempotency_key=KEY) == "sess-2"
    assert await c.set_user_prompt(USER, None, idempotency_key=KEY) is None


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"message": "bad key"}, AuthenticationFailed),
        (403, {"error": "forbidden"}, AuthenticationFailed),
        (402, {"error": {"message": "payment required"}}, InsufficientCredits),
        # Only 402 says "buy credits": a 400/403 that merely mentions them is a refusal.
        (400, {"message": "Insufficient credits for this request"}, BadRequest),
        (403, {"detail": "User has NOT ENOUGH CREDITS"}, AuthenticationFailed),
        (400, "Out of credits", BadRequest),
        (403, {"message": "insufficient permissions for this key"}, AuthenticationFailed),
        (404, {"message": "no such session"}, NotFound),
        (400, {"message": "bad input"}, BadRequest),
        (409, None, BadRequest),
        (413, None, BadRequest),
        (422, {"detail": "input required"}, BadRequest),
        (429, {"message": "slow down"}, RateLimited),
        (408, None, UpstreamError),
        (500, {"error": "boom"}, UpstreamError),
        (501, None, UpstreamError),
        (502, "<html>bad gateway</html>", UpstreamError),
        (503, None, UpstreamError),
        (504, None, UpstreamError),
    ],
)
async def test_status_maps_to_error_class(
    rig: MakeRig, status: int, body: Any, cls: type[SamsarError]
) -> None:
    headers = {"x-request-id": "req-7", "x-credits-remaining": "0"}
    if isinstance(body, str):
        answer = httpx.Response(status, text=body, headers=headers)
    else:
        answer = httpx.Response(status, json=body, headers=headers)
    r = rig(answer, policy=RetryPolicy(attempts=1))
    error = await raises(
        cls, r.client.complete(USER, CompletionRequest("s", "hi"), idempotency_key=KEY)
    )
    assert error.status == status
    assert error.request_id == "req-7"
    assert error.credits_remaining == 0
    assert f"status {status}" in error.message


async def test_error_message_is_extracted_like_samsar_js(rig: MakeRig) -> None:
    r = rig(httpx.Response(404, json={"error": {"message": "  session gone  "}}))
    error = await raises(NotFound, r.client.create_assistant_session(USER, idempotency_key=KEY))
    assert (
        error.message
        == "POST external_users/utils/assistant_session failed with status 404: session gone"
    )


# --- retries ---------------------------------------------------------------------------


async def test_retries_reuse_one_idempotency_key_and_stop_after_attempts(rig: MakeRig) -> None:
    r = rig(httpx.Response(503), policy=RetryPolicy(attempts=4, base_delay=0.5, max_delay=1.0))
    await raises(UpstreamError, r.client.bootstrap_user(USER, idempotency_key=KEY))
    assert len(r.requests) == 4
    assert {q.headers["Idempotency-Key"] for q in r.requests} == {KEY}
    assert len({q.content for q in r.requests}) == 1
    assert len(r.waits) == 3
    for attempt, wait in enumerate(r.waits, start=1):
        assert 0 <= wait <= min(1.0, 0.5 * 2 ** (attempt - 1))


async def test_retryable_failures_then_success(rig: MakeRig) -> None:
    answers = (httpx.Response(502), httpx.Response(429), httpx.Response(408), ok())
    r = rig(*answers, policy=RetryPolicy(attempts=4))
    assert await r.client.create_assistant_session(USER, idempotency_key=KEY) == "sess-1"
    assert len(r.requests) == 4
    assert len(r.waits) == 3


async def test_a_500_is_retried_like_a_502_with_the_same_key_and_body(rig: MakeRig) -> None:
    r = rig(httpx.Response(500, json={"message": "boom"}), ok())
    balance = await r.client.bootstrap_user(USER, idempotency_key=KEY)
    assert balance.remaining == 42
    assert [q.headers["Idempotency-Key"] for q in r.requests] == [KEY, KEY]
    assert r.requests[0].content == r.requests[1].content
    assert len(r.waits) == 1


@pytest.mark.parametrize("status", [400, 401, 402, 404, 409, 422, 501])
async def test_no_retry_on_other_statuses(rig: MakeRig, status: int) -> None:
    r = rig(httpx.Response(status), ok())
    with pytest.raises(SamsarError):
        await r.client.bootstrap_user(USER, idempotency_key=KEY)
    assert len(r.requests) == 1
    assert r.waits == []


@pytest.mark.parametrize(
    ("retry_after", "policy", "expected"),
    [
        ("2", RetryPolicy(), 2.0),
        ("0.25", RetryPolicy(), 0.25),
        ("120", RetryPolicy(), 30.0),
        ("120", RetryPolicy(max_retry_after=5.0), 5.0),
    ],
)
async def test_retry_after_is_honoured_and_capped(
    rig: MakeRig, retry_after: str, policy: RetryPolicy, expected: float
) -> None:
    r = rig(httpx.Response(429, headers={"Retry-After": retry_after}), ok(), policy=policy)
    await r.client.bootstrap_user(USER, idempotency_key=KEY)
    assert r.waits == [expected]


async def test_retry_after_as_http_date(rig: MakeRig) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    r = rig(httpx.Response(429, headers={"Retry-After": when}), ok())
    await r.client.bootstrap_user(USER, idempotency_key=KEY)
    (wait,) = r.waits
    assert 7.0 <= wait <= 10.0


async def test_rate_limit_exhausted_keeps_retry_after(rig: MakeRig) -> None:
    r = rig(httpx.Response(429, headers={"Retry-After": "3"}), policy=RetryPolicy(attempts=2))
    error = await raises(RateLimited, r.client.bootstrap_user(USER, idempotency_key=KEY))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0
    assert r.waits == [3.0]
    assert len(r.requests) == 2


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        (httpx.ReadTimeout("too slow"), SamsarTimeout),
        (httpx.ConnectTimeout("too slow"), SamsarTimeout),
        (httpx.ConnectError("refused"), SamsarUnreachable),
        (httpx.RemoteProtocolError("hung up"), SamsarUnreachable),
    ],
)
async def test_transport_failures_after_retries(
    rig: MakeRig, failure: Exception, cls: type[SamsarError]
) -> None:
    r = rig(failure)
    error = await raises(cls, r.client.recharge_link(USER, 100, idempotency_key=KEY))
    assert isinstance(error.__cause__, httpx.TransportError)
    assert error.status is None
    assert len(r.requests) == 3
    assert len(r.waits) == 2
    assert {q.headers["Idempotency-Key"] for q in r.requests} == {KEY}


# --- malformed answers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"not json", b"", b"[1, 2]", b'"text"', b'{"remainingCredits": NaN}', b"\xff\xfe{"],
)
async def test_unreadable_2xx_body_is_malformed(rig: MakeRig, content: bytes) -> None:
    r = rig(httpx.Response(200, content=content, headers={"x-request-id": "req-1"}))
    error = await raises(MalformedResponse, r.client.bootstrap_user(USER, idempotency_key=KEY))
    assert error.status == 200
    assert error.request_id == "req-1"
    assert len(r.requests) == 1


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.bootstrap_user(USER, idempotency_key=KEY), {"external_api_key": "k"}),
        (lambda c: c.credits(USER), {"lastTopUp": None}),
        (lambda c: c.grant_credits(USER, 1, idempotency_key=KEY), {"creditsGranted": 1}),
        (lambda c: c.create_assistant_session(USER, idempotency_key=KEY), {"request_id": "r"}),
        (lambda c: c.create_assistant_session(USER, idempotency_key=KEY), {"session_id": ""}),
        (lambda c: c.recharge_link(USER, 1, idempotency_key=KEY), {"credits": 1}),
        (lambda c: c.login_link(USER, idempotency_key=KEY), {"loginUrl": "https://l"}),
        (lambda c: c.login_link(USER, idempotency_key=KEY), {"loginToken": "t"}),
        (lambda c: c.set_account_prompt("x", idempotency_key=KEY), {"model": "m"}),
        (
            lambda c: c.complete(USER, CompletionRequest("s", "hi"), idempotency_key=KEY),
            {"output": "not a list"},
        ),
    ],
)
async def test_missing_required_field_is_malformed(rig: MakeRig, call: Call, body: Any) -> None:
    r = rig(ok(body))
    await raises(MalformedResponse, call(r.client))


# --- secrets, logs, lifecycle ----------------------------------------------------------


async def test_api_key_never_in_repr_errors_or_logs(
    rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="core.samsar")
    r = rig(
        httpx.Response(401, json={"message": f"Invalid API key {API_KEY}"}),
        httpx.Response(200, json={"remainingCredits": 1, "secret_body_marker": True}),
    )
    assert API_KEY not in repr(r.client)
    assert API_KEY not in str(r.client)
    error = await raises(AuthenticationFailed, r.client.bootstrap_user(USER, idempotency_key=KEY))
    assert "Invalid API key [redacted]" in error.message
    await r.client.credits(USER)
    records = [rec for rec in caplog.records if rec.name == "core.samsar.client"]
    assert len(records) == 2
    for rec in records:
        line = rec.getMessage() + repr(vars(rec))
        assert API_KEY not in line
        assert "secret_body_marker" not in line
        assert "Ana" not in line  # no identity (query) either
    assert records[0].__dict__["samsar_status"] == 401
    assert records[1].__dict__["samsar_route"] == "external_users/credits"
    assert records[1].__dict__["samsar_attempt"] == 1
    assert isinstance(records[1].__dict__["samsar_latency_ms"], int)


async def test_injected_http_client_is_left_open() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: ok()))
    async with SamsarClient(API_KEY, http=http) as client:
        await client.bootstrap_user(USER, idempotency_key=KEY)
    assert not http.is_closed
    await http.aclose()


async def test_owned_http_client_is_closed() -> None:
    async with SamsarClient(API_KEY) as client:
        http = client._http
        assert not http.is_closed
    assert http.is_closed


# --- images ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, ("image/png", "png")),
        (b"\xff\xd8\xff\xdb", ("image/jpeg", "jpeg")),
        (b"RIFF\x10\x00\x00\x00WEBPVP8L", ("image/webp", "webp")),
        (b"GIF87a..", ("image/gif", "gif")),
        (b"GIF89a..", ("image/gif", "gif")),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"\x89PNG", None),
        (b"", None),
    ],
)
def test_detect_image_format(data: bytes, expected: tuple[str, str] | None) -> None:
    assert detect_image_format(data) == expected


def test_data_url_prefers_the_bytes_over_the_declared_mime() -> None:
    assert data_url(InputImage(PNG, "image/jpeg")) == f"data:image/png;base64,{PNG_B64}"
    assert data_url(InputImage(b"\x00" * 6, "image/heic")) == "data:image/heic;base64,AAAAAAAA"

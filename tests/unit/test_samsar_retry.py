"""The retry policy: what is retried, how long it waits, and the status → error table."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

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
from core.samsar.retry import (
    RetryPolicy,
    error_from_response,
    error_message,
    is_retryable,
    parse_retry_after,
    run_with_retry,
)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (SamsarUnreachable("x"), True),
        (SamsarTimeout("x"), True),
        (RateLimited("x"), True),
        (UpstreamError("x", status=408), True),
        (UpstreamError("x", status=502), True),
        (UpstreamError("x", status=503), True),
        (UpstreamError("x", status=504), True),
        (UpstreamError("x", status=500), True),  # every call carries an idempotency key
        (UpstreamError("x", status=501), False),
        (BadRequest("x", status=400), False),
        (AuthenticationFailed("x", status=401), False),
        (InsufficientCredits("x", status=402), False),
        (NotFound("x", status=404), False),
        (MalformedResponse("x", status=200), False),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    assert [policy.backoff(n, lambda: 1.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert [policy.backoff(n, lambda: 0.0) for n in range(1, 4)] == [0, 0, 0]
    assert policy.backoff(3, lambda: 0.25) == 0.5
    assert policy.backoff(10_000, lambda: 1.0) == 8.0  # no overflow


def test_delay_prefers_retry_after_capped() -> None:
    policy = RetryPolicy(max_retry_after=30.0)
    assert policy.delay_for(RateLimited("x", retry_after=4.0), 1, lambda: 1.0) == 4.0
    assert policy.delay_for(RateLimited("x", retry_after=99.0), 1, lambda: 1.0) == 30.0
    assert policy.delay_for(RateLimited("x"), 2, lambda: 1.0) == 1.0
    assert policy.delay_for(SamsarTimeout("x"), 3, lambda: 1.0) == 2.0


def test_policy_is_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().attempts = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("Tue, 01 Jan 2030 12:00:20 GMT", 20.0),
        ("Tue, 01 Jan 2030 11:59:00 GMT", 0.0),
        ("-5", None),
        ("9" * 400, None),  # a valid delta, infinite as a float
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


class Script:
    """A call that fails with the given errors, then returns "done"; records attempt numbers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.attempts: list[int] = []
        self.waits: list[float] = []

    async def __call__(self, attempt: int) -> str:
        self.attempts.append(attempt)
        if self.errors:
            raise self.errors.pop(0)
        return "done"

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_run_with_retry_retries_then_returns() -> None:
    script = Script(SamsarTimeout("a"), RateLimited("b", retry_after=2.0))
    result = await run_with_retry(script, RetryPolicy(), sleep=script.sleep, rand=lambda: 1.0)
    assert result == "done"
    assert script.attempts == [1, 2, 3]
    assert script.waits == [0.5, 2.0]


async def test_run_with_retry_stops_after_attempts_and_reraises_the_last_error() -> None:
    last = SamsarUnreachable("third")
    script = Script(SamsarUnreachable("1"), SamsarUnreachable("2"), last, SamsarUnreachable("4"))
    with pytest.raises(SamsarUnreachable) as info:
        await run_with_retry(script, RetryPolicy(attempts=3), sleep=script.sleep)
    assert info.value is last
    assert script.attempts == [1, 2, 3]
    assert len(script.waits) == 2


async def test_run_with_retry_does_not_retry_a_final_error() -> None:
    script = Script(UpstreamError("boom", status=501))
    with pytest.raises(UpstreamError):
        await run_with_retry(script, RetryPolicy(), sleep=script.sleep)
    assert script.attempts == [1]
    assert script.waits == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": " m ", "error": "e"}, "m"),
        ({"message": "", "error": "e"}, "e"),
        ({"detail": "d"}, "d"),
        ({"error": {"message": "nested"}}, "nested"),
        ({"error": {"code": 1}}, None),
        ("  plain text  ", "plain text"),
        ([1, 2], None),
        (None, None),
        (7, None),
    ],
)
def test_error_message_like_get_response_error_message(body: object, message: str | None) -> None:
    assert error_message(body) == message


@pytest.mark.parametrize(
    ("status", "text", "cls"),
    [
        (402, '{"message": "Insufficient credits: 5 remaining, 6 required"}', InsufficientCredits),
        (402, "", InsufficientCredits),
        (403, '{"message": "Insufficient credits"}', AuthenticationFailed),
        (403, '{"message": "forbidden"}', AuthenticationFailed),
        (400, "you are out of credits", BadRequest),
        (400, '{"message": "insufficient image data"}', BadRequest),
        (405, "", BadRequest),
        (418, "", BadRequest),
        (408, "", UpstreamError),
        (302, "", UpstreamError),
        (599, "", UpstreamError),
    ],
)
def test_error_from_response_edges(status: int, text: str, cls: type[SamsarError]) -> None:
    error = error_from_response("POST x", status, text, request_id="r", credits_remaining=1.0)
    assert type(error) is cls
    assert (error.status, error.request_id, error.credits_remaining) == (status, "r", 1.0)


def test_error_from_response_redacts_the_secret_and_bounds_the_message() -> None:
    secret = "sk-secret-value"
    error = error_from_response("GET y", 500, f"{secret} " + "x" * 1000, secret=secret)
    assert secret not in str(error)
    assert str(error).startswith("GET y failed with status 500: [redacted] xxx")
    assert len(str(error)) < 400
    rate = error_from_response("GET y", 429, "", retry_after="7", credits_remaining=2.0)
    assert isinstance(rate, RateLimited)
    assert (rate.retry_after, rate.credits_remaining, rate.status) == (7.0, 2.0, 429)

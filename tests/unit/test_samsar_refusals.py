"""Samsar's refusals as members read them: credits only when Samsar says so (402), a refused
key as the operator's problem, and Samsar's own words only in the log."""

from __future__ import annotations

import logging
import math

import httpx
import pytest

from bots import texts
from core.errors import AuthenticationFailed, BadRequest, InsufficientCredits, RateLimited
from core.models import CompletionRequest
from core.samsar.retry import RetryPolicy
from tests.unit.samsar_rig import API_KEY, KEY, USER, MakeRig, raises

REQUEST = CompletionRequest("sess-1", "hello")
ONCE = RetryPolicy(attempts=1)


@pytest.mark.parametrize("status", [400, 403])
async def test_a_refusal_that_mentions_credits_is_not_out_of_credits(
    rig: MakeRig, status: int
) -> None:
    answer = httpx.Response(status, json={"message": "insufficient permissions for this input"})
    r = rig(answer, policy=ONCE)
    cls = BadRequest if status == 400 else AuthenticationFailed
    error = await raises(cls, r.client.complete(USER, REQUEST, idempotency_key=KEY))
    said = texts.describe(error)
    assert "out of credits" not in said and "Buy" not in said


async def test_samsar_out_of_credits_is_402_and_tells_the_member_to_buy(rig: MakeRig) -> None:
    answer = httpx.Response(
        402,
        json={"message": "Insufficient credits: 2 remaining, 6 required"},
        headers={"x-credits-remaining": "2"},
    )
    r = rig(answer, policy=ONCE)
    error = await raises(InsufficientCredits, r.client.complete(USER, REQUEST, idempotency_key=KEY))
    assert texts.describe(error) == (
        "You're out of credits for this (you have 2 left). "
        "Buy more with `/buy <credits>` and try again."
    )


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_an_operator_error_and_members_hear_misconfigured(
    rig: MakeRig, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.INFO, logger="core.samsar")
    answer = httpx.Response(status, json={"message": f"Invalid API key {API_KEY}"})
    r = rig(answer, policy=ONCE)
    error = await raises(AuthenticationFailed, r.client.bootstrap_user(USER, idempotency_key=KEY))
    assert texts.describe(error) == texts.MISCONFIGURED
    assert "misconfigured" in texts.MISCONFIGURED
    assert "operator has been told" in texts.MISCONFIGURED
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("operator error: Samsar refused the API key")
    assert "Invalid API key [redacted]" in record.__dict__["samsar_error"]
    assert API_KEY not in record.getMessage() + repr(vars(record))


RAW = "input.content[3].image_url rejected by validator vx-2 <!channel> @everyone"


@pytest.mark.parametrize("status", [400, 409, 422, 413])
async def test_samsar_words_reach_the_log_never_the_member(
    rig: MakeRig, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.INFO, logger="core.samsar")
    r = rig(httpx.Response(status, json={"message": RAW}), policy=ONCE)
    error = await raises(BadRequest, r.client.complete(USER, REQUEST, idempotency_key=KEY))
    said = texts.describe(error)
    assert "validator" not in said and "@everyone" not in said and "channel" not in said
    assert said.startswith("That was too large" if status == 413 else "Samsar could not accept")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert RAW in record.getMessage()


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (None, "in a minute"),
        (30.0, "in about 30 s"),
        (86_400 * 365.0, "later"),
        (math.inf, "later"),
    ],
)
def test_an_odd_retry_after_is_not_read_out(retry_after: float | None, wait: str) -> None:
    said = texts.describe(RateLimited("429", retry_after=retry_after))
    assert said == f"Samsar is busy right now (rate limited). Please try again {wait}."

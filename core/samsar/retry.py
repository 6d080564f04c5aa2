"""The one retry policy of Samsar calls, and which HTTP status is which (retryable or not) error."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from core.errors import (
    AuthenticationFailed,
    BadRequest,
    InsufficientCredits,
    NotFound,
    RateLimited,
    SamsarError,
    SamsarTimeout,
    SamsarUnreachable,
    UpstreamError,
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
"""An async sleep (injectable so tests record waits instead of sleeping)."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_DETAIL = 300
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a Samsar call gets and how long to wait between them (seconds)."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter after the `attempt`-th failure: uniform in [0, min(cap, base·2^(n-1)))."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(max(attempt - 1, 0), 60))
        return rand() * ceiling

    def delay_for(
        self, error: BaseException, attempt: int, rand: Callable[[], float] = random.random
    ) -> float:
        """The wait before the next attempt: Retry-After (capped) when given, else the backoff."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        return self.backoff(attempt, rand)


def is_retryable(error: BaseException) -> bool:
    """True for connection failures, timeouts, 429 and 408/500/502/503/504; never other statuses.

    Retrying a 500 is safe: every POST carries an idempotency key, so a repeat is a replay.
    """
    if isinstance(error, SamsarUnreachable | SamsarTimeout | RateLimited):
        return True
    return isinstance(error, UpstreamError) and error.status in RETRY_STATUSES


def error_from_response(
    where: str,
    status: int,
    text: str,
    *,
    retry_after: str | None = None,
    request_id: str | None = None,
    credits_remaining: float | None = None,
    secret: str = "",
) -> SamsarError:
    """The error of a non-2xx answer (body text, Retry-After header); `secret` never in it."""
    try:
        parsed: object = json.loads(text) if text else None
    except (ValueError, RecursionError):
        parsed = text
    detail = error_message(parsed)
    if detail and secret:
        detail = detail.replace(secret, "[redacted]")
    message = f"{where} failed with status {status}"
    if detail:
        message = f"{message}: {detail[:_MAX_DETAIL]}"
    return error_for_status(
        status,
        message,
        retry_after=parse_retry_after(retry_after),
        request_id=request_id,
        credits_remaining=credits_remaining,
    )


def error_for_status(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
    credits_remaining: float | None = None,
) -> SamsarError:
    """The error of a non-2xx status. Samsar says "not enough credits" with 402 alone (the
    sandbox and samsar-js carry no other signal): a 400/403 whose text merely mentions
    credits is a refusal, not a reason to tell a member to buy more."""
    cls: type[SamsarError] = UpstreamError  # 5xx, 408 and anything unexpected
    if status == 402:
        cls = InsufficientCredits
    elif status in (401, 403):
        cls = AuthenticationFailed
    elif status == 404:
        cls = NotFound
    elif status == 429:
        error = RateLimited(message, retry_after=retry_after, request_id=request_id)
        error.credits_remaining = credits_remaining
        return error
    elif 400 <= status < 500 and status != 408:
        cls = BadRequest
    return cls(message, status=status, request_id=request_id, credits_remaining=credits_remaining)


def error_message(body: object) -> str | None:
    """The message of an error body, as getResponseErrorMessage finds it."""
    if isinstance(body, str):
        return body.strip() or None
    if not isinstance(body, dict):
        return None
    for key in ("message", "error", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    nested = body.get("error")
    if isinstance(nested, dict):
        message = nested.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP date); None if unusable
    (or too large to be a number)."""
    if value is None or not (text := value.strip()):
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)  # "9" * 400 is a valid delta, and infinite as a float
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def run_with_retry(
    call: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Await `call(attempt_number)` under the policy; the last error is re-raised as is."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if error is None:
            return policy.backoff(state.attempt_number, rand)
        return policy.delay_for(error, state.attempt_number, rand)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception(is_retryable),
        sleep=sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call(attempt.retry_state.attempt_number)
    raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

"""`SamsarClient`: the SamsarPort over one httpx.AsyncClient, speaking samsar-js 0.48.48's wire."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from core import metrics
from core.errors import (
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    SamsarError,
    SamsarTimeout,
    SamsarUnreachable,
)
from core.models import (
    Balance,
    CheckoutLink,
    Completion,
    CompletionRequest,
    Credits,
    ExternalIdentity,
    GeneratedImage,
    ImageProblem,
    LoginLink,
)
from core.offload import BIG, Parcel, offload, receive
from core.samsar import wire
from core.samsar.completion import (
    decode_completion_file,
    note_skipped,
    pictures,
    read_completion,
    reject_constant,
)
from core.samsar.retry import RetryPolicy, Sleep, error_from_response, run_with_retry
from core.samsar.transport import samsar_http

if TYPE_CHECKING:
    from core.ports import SamsarPort

_log = logging.getLogger(__name__)
R = TypeVar("R", bound=wire.WireResponse)
_Body = wire.WireBody | bytes | wire.PicturesBody
"""A request body: a model to serialize, or the bytes or pictures body of a completion."""


@dataclass(frozen=True, slots=True)
class _Reply:
    """A 2xx answer: its JSON object (None for a big body, left as `content` for whoever
    reads it off the event loop), status, request id and credit headers."""

    status: int
    body: dict[str, Any] | None
    request_id: str | None
    credits: Credits
    content: bytes | bytearray | Path = b""


def _number(value: str | None) -> float | None:
    """A finite number from a header, like the reference's parseNumber; None otherwise."""
    if value is None or "_" in value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _charged(value: float | None, where: str) -> float | None:
    """A charge as Samsar reported it; a negative one is an oddity, logged and left unknown."""
    if value is not None and value < 0:
        _log.warning("negative credits charged", extra={"samsar_call": where, "value": value})
        return None
    return value


def _remaining(value: float | None, where: str) -> float | None:
    """A balance to show: a negative one (usage settled past zero) is logged and shown as 0."""
    if value is not None and value < 0:
        _log.warning("negative credits remaining", extra={"samsar_call": where, "value": value})
        return 0.0
    return value


def _short_header(value: str | None, limit: int = 200) -> str | None:
    """A header value kept for logs and errors, cut to `limit` characters."""
    return value[:limit] if value is not None else None


def _positive(credits: int) -> int:
    if credits <= 0:
        raise ValueError("credits must be a positive number")
    return credits


_user = wire.ExternalUser.from_identity
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def check_base_url(url: str) -> str:
    """`url` when it is https://, or http:// to a loopback host (127.0.0.0/8, ::1, localhost);
    ValueError otherwise, since plain http would carry the API key in clear."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise ValueError("the Samsar base URL is not a valid URL") from exc
    if parsed.scheme == "https" and parsed.host:
        return url.strip()
    if parsed.scheme == "http" and _is_loopback(parsed.host):
        return url.strip()
    if parsed.scheme == "http":
        raise ValueError(
            "the Samsar base URL must use https:// (http:// would send the API key in clear; "
            "it is allowed only for 127.0.0.1, ::1 or localhost)"
        )
    raise ValueError("the Samsar base URL must be an https:// URL")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SamsarClient:
    """The Samsar API (SamsarPort) on one injected or owned httpx.AsyncClient."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.samsar.one/v1",
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        completion_timeout: float = 180.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not api_key.strip():
            raise ValueError("a Samsar API key is required")
        self._api_key = api_key
        self._base_url = check_base_url(base_url).rstrip("/")
        self._urls: dict[str, httpx.URL] = {}
        self._owns_http = http is None
        self._http = http if http is not None else samsar_http()
        self._timeout = timeout
        self._completion_timeout = completion_timeout
        self._retry = retry
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SamsarClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the httpx client, only when this client created it."""
        if self._owns_http:
            await self._http.aclose()

    # --- SamsarPort -------------------------------------------------------------------

    async def bootstrap_user(self, user: ExternalIdentity, *, idempotency_key: str) -> Balance:
        """POST external_users/session: create or refresh the external user."""
        body = wire.SessionBody(external_user=_user(user))
        return self._balance(await self._post("external_users/session", body, idempotency_key))

    async def create_assistant_session(
        self, user: ExternalIdentity, *, idempotency_key: str
    ) -> str:
        """POST external_users/utils/assistant_session: a blank session; returns session_id."""
        body = wire.SessionBody(external_user=_user(user))
        reply = await self._post("external_users/utils/assistant_session", body, idempotency_key)
        return self._parse(wire.AssistantSessionResponse, reply).session_id

    async def complete(
        self, user: ExternalIdentity, request: CompletionRequest, *, idempotency_key: str
    ) -> Completion:
        """POST external_users/assistant/completion, billed to the external user."""
        body = wire.completion_content(request, _user(user))
        route = "external_users/assistant/completion"
        reply = await self._post(route, body, idempotency_key, limit=self._completion_timeout)
        if reply.body is not None:
            read = read_completion(reply.body)
            images: tuple[GeneratedImage, ...] = ()
            problems: list[ImageProblem] = []
            if read.image_calls:  # an answer in words only makes no trip to a thread
                images, problems = await asyncio.to_thread(pictures, read.image_calls)
        else:  # pictures: parsed, decoded and checked in a worker process, from the file
            assert isinstance(reply.content, Path)
            try:
                decoded = await offload(BIG, decode_completion_file, str(reply.content))
            finally:
                await asyncio.to_thread(reply.content.unlink, missing_ok=True)
            if isinstance(decoded, str):
                raise MalformedResponse(
                    f"POST {route}: {decoded}", status=reply.status, request_id=reply.request_id
                )
            read, parcels, problems = decoded
            images = await _unpacked(parcels)
            if read.skipped:
                note_skipped(read)
            if problems:
                shown = [problem.value for problem in problems]
                _log.warning("pictures not delivered", extra={"problems": shown})
        if read.empty and read.skipped:
            raise MalformedResponse(
                f"POST {route}: no text or image in the completion body",
                status=reply.status,
                request_id=reply.request_id,
            )
        return Completion(
            response_id=read.response_id,
            text=read.text,
            images=images,
            credits=reply.credits,
            image_problems=tuple(problems),
        )

    async def set_user_prompt(
        self, user: ExternalIdentity, prompt: str | None, *, idempotency_key: str
    ) -> str | None:
        """POST external_users/assistant/set_system_prompt; None clears. Returns the stored one."""
        body = wire.UserPromptBody(system_prompt=prompt, external_user=_user(user))
        reply = await self._post(
            "external_users/assistant/set_system_prompt", body, idempotency_key
        )
        return self._parse(wire.PromptResponse, reply).system_prompt

    async def credits(self, user: ExternalIdentity) -> Balance:
        """GET external_users/credits with the identity as query."""
        query = _user(user).query_string()
        return self._balance(await self._call("GET", "external_users/credits", query=query))

    async def recharge_link(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> CheckoutLink:
        """POST external_users/credits/recharge: a checkout link."""
        body = wire.CreditsBody(
            external_user=_user(user), input=wire.CreditsInput(credits=_positive(credits))
        )
        reply = await self._post("external_users/credits/recharge", body, idempotency_key)
        parsed = self._parse(wire.RechargeResponse, reply)
        bought = round(parsed.credits) if parsed.credits is not None else credits
        return CheckoutLink(url=parsed.url, credits=bought, amount_usd=parsed.amount_usd)

    async def grant_credits(
        self, user: ExternalIdentity, credits: int, *, idempotency_key: str
    ) -> Balance:
        """POST external_users/credits/grant (operator)."""
        body = wire.CreditsBody(
            external_user=_user(user), input=wire.CreditsInput(credits=_positive(credits))
        )
        return self._balance(
            await self._post("external_users/credits/grant", body, idempotency_key)
        )

    async def login_link(
        self, user: ExternalIdentity, *, idempotency_key: str, redirect: str | None = None
    ) -> LoginLink:
        """POST external_users/create_login_token: a short-lived Studio link."""
        body = wire.LoginTokenBody(external_user=_user(user), redirect=redirect or None)
        reply = await self._post("external_users/create_login_token", body, idempotency_key)
        parsed = self._parse(wire.LoginTokenResponse, reply)
        seconds = parsed.expires_in_seconds
        return LoginLink(
            url=parsed.login_url,
            expires_at=parsed.expires_at,
            expires_in_seconds=round(seconds) if seconds is not None else None,
        )

    async def set_account_prompt(self, prompt: str | None, *, idempotency_key: str) -> str | None:
        """POST assistant/set_system_prompt (operator); None clears."""
        body = wire.AccountPromptBody(system_prompt=prompt)
        reply = await self._post("assistant/set_system_prompt", body, idempotency_key)
        return self._parse(wire.PromptResponse, reply).system_prompt

    # --- transport --------------------------------------------------------------------

    def _parse(self, model: type[R], reply: _Reply) -> R:
        assert reply.body is not None, "only completion bodies are left unparsed"
        return wire.parse(model, reply.body, status=reply.status, request_id=reply.request_id)

    def _balance(self, reply: _Reply) -> Balance:
        parsed = self._parse(wire.BalanceResponse, reply)
        remaining = _remaining(parsed.remaining_credits, "remainingCredits")
        if remaining is None:
            remaining = reply.credits.remaining
        return Balance(remaining=remaining, credits=reply.credits)

    async def _post(
        self, route: str, body: _Body, key: str, *, limit: float | None = None
    ) -> _Reply:
        return await self._call("POST", route, body=body, idempotency_key=key, limit=limit)

    async def _call(
        self,
        method: str,
        route: str,
        *,
        body: _Body | None = None,
        query: str | None = None,
        idempotency_key: str | None = None,
        limit: float | None = None,
    ) -> _Reply:
        """Send one logical call; every retry reuses the same URL, headers and body bytes."""
        url = self._url(route)
        if query:
            url = url.copy_with(query=query.encode())
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        content = body.to_json() if isinstance(body, wire.WireBody) else body
        if isinstance(content, wire.PicturesBody):  # sent as made: its length told beforehand
            headers["Content-Length"] = str(len(content))
        limit = limit if limit is not None else self._timeout

        async def attempt(number: int) -> _Reply:
            request = self._http.build_request(
                method, url, headers=headers, content=content, timeout=limit
            )
            return await self._send(request, route, number, limit)

        return await run_with_retry(attempt, self._retry, sleep=self._sleep)

    def _url(self, route: str) -> httpx.URL:
        """The route's address, parsed once (there are a handful)."""
        url = self._urls.get(route)
        if url is None:
            url = self._urls[route] = httpx.URL(f"{self._base_url}/{route.lstrip('/')}")
        return url

    async def _send(self, request: httpx.Request, route: str, attempt: int, limit: float) -> _Reply:
        """One attempt, logged as one line (route, status, attempt, latency, Samsar's error
        message; never bodies). A refused API key is logged as the operator's error."""
        started, status, outcome = time.perf_counter(), None, "error"
        error: SamsarError | None = None
        try:
            reply = await self._exchange(request, route, limit)
            status, outcome = reply.status, "ok"
            return reply
        except SamsarError as exc:
            status, outcome, error = exc.status, type(exc).__name__, exc
            raise
        finally:
            seconds = time.perf_counter() - started
            metrics.samsar_call(route, seconds, None if error is None else type(error).__name__)
            fields: dict[str, object] = {
                "samsar_method": request.method,
                "samsar_route": route,
                "samsar_status": status,
                "samsar_attempt": attempt,
                "samsar_latency_ms": round((time.perf_counter() - started) * 1000),
                "samsar_outcome": outcome,
            }
            line = "samsar call method=%s route=%s status=%s attempt=%d latency_ms=%d outcome=%s"
            level = logging.DEBUG if error is None else logging.INFO
            if error is not None:
                # Samsar's own words are for the operator's log; members read bots.texts.
                fields["samsar_error"] = error.message
                line += " error=%s"
            if isinstance(error, AuthenticationFailed):
                level = logging.ERROR
                line = "operator error: Samsar refused the API key (check SAMSAR_API_KEY); " + line
            elif isinstance(error, BadRequest):
                level = logging.WARNING
            _log.log(level, line, *fields.values(), extra=fields)

    async def _exchange(self, request: httpx.Request, route: str, limit: float) -> _Reply:
        where = f"{request.method} {route}"
        try:
            response = await self._http.send(request, stream=True)
            try:
                spill = route.endswith("completion") and 200 <= response.status_code < 300
                content = await _read(response, spill=spill)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise SamsarTimeout(f"{where}: no answer within {limit:g}s") from exc
        except httpx.DecodingError as exc:
            raise MalformedResponse(f"{where}: undecodable response body") from exc
        except httpx.RequestError as exc:
            raise SamsarUnreachable(f"{where}: connection failed ({type(exc).__name__})") from exc
        status, headers = response.status_code, response.headers
        request_id = _short_header(headers.get("x-request-id"))
        credits = Credits(
            charged=_charged(_number(headers.get("x-credits-charged")), where),
            remaining=_remaining(_number(headers.get("x-credits-remaining")), where),
        )
        if not 200 <= status < 300:
            raise error_from_response(
                where,
                status,
                bytes(content).decode(response.encoding or "utf-8", errors="replace")
                if not isinstance(content, Path)
                else "",
                retry_after=headers.get("retry-after"),
                request_id=request_id,
                credits_remaining=credits.remaining,
                secret=self._api_key,
            )
        if isinstance(content, Path):
            return _Reply(status, None, request_id, credits, content=content)
        try:
            body = json.loads(content, parse_constant=reject_constant)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise MalformedResponse(
                f"{where}: response body is not JSON", status=status, request_id=request_id
            ) from exc
        if not isinstance(body, dict):
            raise MalformedResponse(
                f"{where}: response body is not a JSON object", status=status, request_id=request_id
            )
        return _Reply(status=status, body=body, request_id=request_id, credits=credits)


async def _unpacked(
    parcels: tuple[tuple[GeneratedImage, Parcel], ...],
) -> tuple[GeneratedImage, ...]:
    """The pictures a worker sent back, their bytes read from their parcels (the parcels not
    read yet are removed when one fails or the turn is cancelled)."""
    images: list[GeneratedImage] = []
    try:
        for image, parcel in parcels:
            images.append(dataclasses.replace(image, data=await receive(parcel)))
    except BaseException:
        for _, parcel in parcels[len(images) :]:
            parcel.discard()
        raise
    return tuple(images)


async def _read(response: httpx.Response, *, spill: bool) -> bytearray | Path:
    """The body, gathered piece by piece as it arrives (a picture's 60 MB are never joined in
    one step of the event loop); with `spill`, a body that grows big goes on in a file instead,
    a megabyte at a time, for a worker process to read: the bot's own memory never holds the
    base64 of a picture."""
    content = bytearray()
    spilled: _Spilled | None = None
    try:
        async for piece in response.aiter_bytes():
            content += piece
            if spill and len(content) >= BIG:
                if spilled is None:
                    spilled = await asyncio.to_thread(_Spilled)
                await asyncio.to_thread(spilled.write, content)
                content = bytearray()
        if spilled is None:
            return content
        await asyncio.to_thread(spilled.write, content)
        return await asyncio.to_thread(spilled.close)
    except BaseException:
        if spilled is not None:
            await asyncio.to_thread(spilled.discard)
        raise


class _Spilled:
    """A body being written to a temporary file."""

    def __init__(self) -> None:
        self._file = tempfile.NamedTemporaryFile(prefix="samsar-body-", delete=False)  # noqa: SIM115

    def write(self, data: bytearray) -> None:
        self._file.write(data)

    def close(self) -> Path:
        self._file.close()
        return Path(self._file.name)

    def discard(self) -> None:
        self.close().unlink(missing_ok=True)


if TYPE_CHECKING:

    def _implements_port(client: SamsarClient) -> SamsarPort:
        return client

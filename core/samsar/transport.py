"""The HTTP transport under the Samsar client: httpx's interface on aiohttp's connection pool.

httpcore's pool (httpx's default) looks at every pooled connection, a system call each, for
every request it places and every response it closes: with some fifty requests in flight,
that was more of a turn's CPU than everything else the bot does (see README, Performance).
aiohttp's pool takes a free connection off a list, so the same requests cost about a fifth of
the CPU. httpx-aiohttp puts it behind httpx's transport interface; this module only names
aiohttp's failures the way httpcore would (httpx-aiohttp calls a refused connection a connect
*timeout*, and lets a bare `TimeoutError` through), so `SamsarClient` tells a member "Samsar
did not answer" or "Samsar cannot be reached" as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# What each aiohttp failure is in httpx's terms, most specific first (a class is matched by
# isinstance, so a subclass must come before its base).
_AS_HTTPX: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, no route, DNS, TLS
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not HTTP as it should be
    (aiohttp.ClientPayloadError, httpx.ReadError),  # a body cut short or badly framed
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),  # reset, broken pipe, closed
    (aiohttp.ClientError, httpx.NetworkError),
    (TimeoutError, httpx.TimeoutException),  # aiohttp's whole-request limit
)


def _as_httpx(exc: BaseException) -> httpx.TransportError | None:
    """`exc` (aiohttp's, or httpx-aiohttp's naming of it) as httpx would have raised it."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if cause is None:
        return None
    for theirs, ours in _AS_HTTPX:
        if isinstance(cause, theirs):
            named = ours(str(cause) or type(cause).__name__)
            named.__cause__ = cause
            return named
    return None


@contextlib.contextmanager
def _named() -> Iterator[None]:
    try:
        yield
    except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
        named = _as_httpx(exc)
        if named is None:
            raise
        raise named from named.__cause__


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp, its failures named as httpx's."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _named():
            async for piece in self._inner:
                yield piece

    async def aclose(self) -> None:
        with _named():
            await self._inner.aclose()


class SamsarTransport(httpx.AsyncBaseTransport):
    """httpx requests sent through one aiohttp session (made at the first request, in the
    event loop that sends it; closed with the httpx client)."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, keepalive_expiry=5.0)
        self._limits = limits
        # Certificates checked as httpx checks them: certifi's authorities, or SSL_CERT_FILE /
        # SSL_CERT_DIR when set.
        self._tls = httpx.create_ssl_context()
        self._inner = AiohttpTransport(client=self._session)

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry,
            ssl=self._tls,
        )
        # No cookies: Samsar is called with a bearer key, and a jar is work on every answer.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _named():
            response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers.raw,
            stream=_Body(response.stream),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """httpx's client without its cookie jar: Samsar is called with a bearer key, and httpx
    reads every answer for cookies (a urllib request built for each: 4–5 % of a turn's CPU
    under load, with none to find)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._none = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return None


def samsar_http() -> httpx.AsyncClient:
    """The httpx client `SamsarClient` makes for itself."""
    return _CookielessClient(transport=SamsarTransport())

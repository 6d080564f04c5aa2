"""Images a member attached, fetched only from Discord's CDN and never beyond the size limit.

An attachment's URL and size come from the event; neither is trusted: a host other than
Discord's CDN is never asked, and the download stops as soon as it passes the limit, whatever
size was declared. Every way a download can fail (an HTTP error, a timeout, a reset
connection, a redirect elsewhere) ends in the same sentence for the member, before anything
is sent to Samsar.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from bots.discord.routes import Attachment
from core.errors import InputRejected
from core.models import InputImage

log = logging.getLogger(__name__)

DISCORD_CDN_ORIGINS = ("https://cdn.discordapp.com", "https://media.discordapp.net")
_CHUNK = 64 * 1024


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased ("" when it has none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


class AttachmentFetcher:
    """Downloads the images of a turn for core (`InputImage`s)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        origins: Sequence[str] = DISCORD_CDN_ORIGINS,
        timeout: float = 30.0,
        proxy: str | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._origins = frozenset(o.rstrip("/").lower() for o in origins)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._proxy = proxy

    def allowed(self, url: str) -> bool:
        """Whether `url` is on Discord's CDN (the only place attachments are fetched from)."""
        return origin(url) in self._origins

    async def images(self, items: Sequence[Attachment]) -> tuple[InputImage, ...]:
        """Every attachment, downloaded, or InputRejected naming the first that failed."""
        if not items:
            return ()
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            return tuple([await self._fetch(session, item) for item in items])

    async def _fetch(self, session: aiohttp.ClientSession, item: Attachment) -> InputImage:
        if not self.allowed(item.url):
            log.warning("attachment url refused", extra={"origin": origin(item.url)[:100]})
            raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=item.filename)
        if item.size > self._max_bytes:
            raise self._too_large(item)
        data = bytearray()
        try:
            async with session.get(item.url, allow_redirects=False, proxy=self._proxy) as response:
                if response.status != 200:
                    raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=item.filename)
                async for piece in response.content.iter_chunked(_CHUNK):
                    data += piece
                    if len(data) > self._max_bytes:
                        raise self._too_large(item)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # TimeoutError: too slow
            log.warning("attachment fetch failed", extra={"error": type(exc).__name__})
            raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=item.filename) from exc
        return InputImage(bytes(data), item.mime, item.filename)

    def _too_large(self, item: Attachment) -> InputRejected:
        return InputRejected(
            InputRejected.IMAGE_TOO_LARGE, limit=self._max_bytes, detail=item.filename
        )

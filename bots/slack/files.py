"""Images a member attached: fetched from Slack with the bot token, only from Slack's own file
URLs and never beyond the size limit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.progress import WEB_API_ERRORS, error_code
from core.errors import InputRejected
from core.models import InputImage

log = logging.getLogger(__name__)

SLACK_FILE_ORIGINS = ("https://files.slack.com",)


def _name(file: dict[str, Any]) -> str:
    return str(file.get("name") or file.get("id") or "image")


def _url(file: dict[str, Any]) -> str:
    return str(file.get("url_private_download") or file.get("url_private") or "")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_image(file: dict[str, Any]) -> bool:
    return str(file.get("mimetype", "")).startswith("image/")


class FileFetcher:
    """Downloads a message's image files for core (`InputImage`s)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        max_bytes: int,
        origins: Sequence[str] = SLACK_FILE_ORIGINS,
        timeout: float = 30.0,
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._origins = tuple(origin.rstrip("/").lower() for origin in origins)

    async def images(self, files: Sequence[dict[str, Any]]) -> tuple[InputImage, ...]:
        """The image files among `files`, downloaded; other files are ignored."""
        wanted = [file for file in files if _is_image(file)]
        if not wanted:
            return ()
        completed = [await self._complete(file) for file in wanted]
        for file in completed:  # every file's origin and size before any download
            self._check(file)
        images: list[InputImage] = []
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            for file in completed:
                images.append(await self._download(session, file))
        return tuple(images)

    async def _complete(self, file: dict[str, Any]) -> dict[str, Any]:
        """Slack Connect files come without URLs until `files.info` is asked."""
        if file.get("url_private_download") or file.get("url_private"):
            return file
        try:
            response = await self._client.files_info(file=str(file.get("id", "")))
        except WEB_API_ERRORS as exc:
            log.warning(
                "files.info failed", extra={"file_id": file.get("id"), "error": error_code(exc)}
            )
            raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=file.get("name")) from exc
        info = response.get("file")
        return info if isinstance(info, dict) else file

    def _check(self, file: dict[str, Any]) -> None:
        """Refuse a file from outside Slack or declared over the size limit."""
        name = _name(file)
        if _origin(_url(file)) not in self._origins:
            log.warning("file url refused", extra={"file_id": file.get("id")})
            raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=name)
        declared = file.get("size")  # files.info's answer is not checked at the door
        if type(declared) is int and declared > self._max_bytes:
            raise InputRejected(InputRejected.IMAGE_TOO_LARGE, limit=self._max_bytes, detail=name)

    async def _download(self, session: aiohttp.ClientSession, file: dict[str, Any]) -> InputImage:
        name, url = _name(file), _url(file)
        headers = {"Authorization": f"Bearer {self._client.token}"}
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status != 200:
                    raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=name)
                data = bytearray()
                async for piece in response.content.iter_chunked(64 * 1024):
                    data += piece
                    if len(data) > self._max_bytes:
                        break
        except (aiohttp.ClientError, TimeoutError) as exc:  # TimeoutError: slower than allowed
            log.warning(
                "file download failed", extra={"file_id": file.get("id"), "error": error_code(exc)}
            )
            raise InputRejected(InputRejected.IMAGE_UNREADABLE, detail=name) from exc
        if len(data) > self._max_bytes:
            raise InputRejected(InputRejected.IMAGE_TOO_LARGE, limit=self._max_bytes, detail=name)
        mime = str(file.get("mimetype") or "application/octet-stream")
        return InputImage(data=bytes(data), mime=mime, filename=name)

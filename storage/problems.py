"""Why a database cannot be used, as one clause an operator can act on (never the password)."""

from __future__ import annotations

import socket

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_EXAMPLES = "postgresql+asyncpg://user:password@host:5432/name or sqlite+aiosqlite:///path/file.db"


class DatabaseUnavailable(Exception):
    """The database cannot be used: its URL is not one the bot opens, or the server or the file
    refuses. The message is a clause that says why, without the URL's password."""


def check_url(url: str) -> URL:
    """The parsed URL of a database the bot can open, else DatabaseUnavailable saying why."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseUnavailable(f"it is not a database URL (use {_EXAMPLES})") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    wanted = DRIVERS.get(backend)
    if wanted is None:
        raise DatabaseUnavailable(f"{backend!r} is not a database the bot uses (use {_EXAMPLES})")
    if driver != wanted:
        raise DatabaseUnavailable(
            f"{backend} is used through the {wanted} driver, not {driver!r}: "
            f"write {backend}+{wanted}://…"
        )
    return parsed


def unavailable(error: BaseException, url: URL, *, connect_timeout: float) -> DatabaseUnavailable:
    """DatabaseUnavailable for an error met while opening the database at `url`."""
    where = _where(url)
    if isinstance(error, ConnectionRefusedError):
        text = f"{where} refused the connection (is the server running, on that port?)"
    elif isinstance(error, TimeoutError):
        text = f"{where} did not answer within {connect_timeout:g} s"
    elif isinstance(error, socket.gaierror):
        text = f"{where}: the host name is not known"
    elif isinstance(error, OSError) and error.filename:
        text = f"{where} cannot be opened: {error.strerror or error}: {error.filename}"
    elif isinstance(error, OSError):
        text = f"{where} cannot be reached: {error.strerror or error}"
    elif isinstance(error, DBAPIError) and url.get_backend_name() == "postgresql":
        text = f"{where} refused: {_first_line(error.orig)}"
    elif isinstance(error, DBAPIError):
        text = f"{where} cannot be opened: {_first_line(error.orig)}"
    else:
        text = f"{where} cannot be opened: {_first_line(error)}"
    if url.password:  # no driver is known to echo it; never let one
        text = text.replace(str(url.password), "***")
    return DatabaseUnavailable(text)


def _where(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"the SQLite database {url.database}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

"""Installations' tokens encrypted at rest (TOKEN_ENCRYPTION_KEY), so that a database dump or
a backup holds no usable Slack token.

Fernet keys (cryptography's `MultiFernet`): several, comma-separated, for rotation; the first
encrypts, every one decrypts. slack_sdk's SQLAlchemy store is used as it is, over tables whose
token columns encrypt on the way in and decrypt on the way out. A token stored before the key
was set stays readable (it is plain `xox…`) until `samsar-bot slack rotate-key` seals it.
A key that opens none of the stored tokens is an error at start, never a silent "not installed".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator

from storage.slack_tables import TOKEN_COLUMNS, slack_bots, slack_installations

log = logging.getLogger(__name__)

_PLAIN = "xox"  # every Slack token starts so; no Fernet token does ("gAAAA…")


class WrongKey(Exception):
    """TOKEN_ENCRYPTION_KEY opens none of the stored tokens (or is no key at all)."""


def keys(raw: str) -> MultiFernet:
    """The keys of TOKEN_ENCRYPTION_KEY; ValueError names what is wrong, never the key."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise ValueError("no key in it")
    try:
        return MultiFernet([Fernet(part) for part in parts])
    except ValueError:
        raise ValueError(
            "not a Fernet key (32 url-safe base64 bytes; make one with `samsar-bot slack new-key`)"
        ) from None


def new_key() -> str:
    """A fresh key for TOKEN_ENCRYPTION_KEY."""
    return Fernet.generate_key().decode()


class Sealed(TypeDecorator[str]):
    """A token column: encrypted when written, decrypted when read."""

    impl = sa.String
    cache_ok = False  # its key is no part of a statement's cache key: never share one

    def __init__(self, fernet: MultiFernet, length: int | None = None) -> None:
        super().__init__(length)
        self._fernet = fernet

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """Encrypt with the first key."""
        if value is None:
            return None
        return self._fernet.encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        """Decrypt with any key (a token stored before encryption passes as it is)."""
        return None if value is None else open_token(self._fernet, value)


def open_token(fernet: MultiFernet, value: str) -> str:
    """The token in a stored value; WrongKey when no key opens it."""
    if value.startswith(_PLAIN):
        return value
    try:
        return fernet.decrypt(value.encode()).decode()
    except InvalidToken:
        raise WrongKey(
            "it cannot decrypt the stored Slack tokens; set the key they were encrypted with "
            "(several keys may be given, comma-separated)"
        ) from None


def _sealed_copy(table: sa.Table, metadata: sa.MetaData, fernet: MultiFernet) -> sa.Table:
    """`table` with its token columns sealed."""
    columns = []
    for column in table.columns:
        kind: Any = column.type
        if column.name in TOKEN_COLUMNS:
            kind = Sealed(fernet, column.type.length)  # type: ignore[attr-defined]
        columns.append(
            sa.Column(
                column.name,
                kind,
                primary_key=column.primary_key,
                nullable=column.nullable,
                autoincrement=column.autoincrement,
            )
        )
    return sa.Table(table.name, metadata, *columns)


class SealedInstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's store whose tokens are encrypted in the database."""

    def __init__(self, client_id: str, engine: AsyncEngine, fernet: MultiFernet, **kwargs: Any):
        super().__init__(client_id, engine, **kwargs)
        metadata = sa.MetaData()
        self.installations = _sealed_copy(slack_installations, metadata, fernet)
        self.bots = _sealed_copy(slack_bots, metadata, fernet)
        self.metadata = metadata


async def check_keys(engine: AsyncEngine, fernet: MultiFernet) -> int:
    """Open every stored token once (WrongKey when one cannot be); how many are sealed."""
    sealed = 0
    async with engine.connect() as conn:
        for value in await _token_values(conn):
            open_token(fernet, value)
            sealed += not value.startswith(_PLAIN)
    return sealed


async def reseal(engine: AsyncEngine, fernet: MultiFernet) -> int:
    """Encrypt every stored token again with the first key (plain ones too); how many rows."""
    rows = 0
    async with engine.begin() as conn:
        for table in (slack_installations, slack_bots):
            names = [name for name in TOKEN_COLUMNS if name in table.columns]
            result = await conn.execute(sa.select(table.c.id, *(table.c[n] for n in names)))
            for row in result.all():
                values = {}
                for name in names:
                    value = row._mapping[name]
                    if value is not None:
                        token = open_token(fernet, value)
                        values[name] = fernet.encrypt(token.encode()).decode()
                if values:
                    await conn.execute(table.update().where(table.c.id == row.id).values(values))
                    rows += 1
    return rows


async def _token_values(conn: Any) -> Sequence[str]:
    values: list[str] = []
    for table in (slack_installations, slack_bots):
        names = [name for name in TOKEN_COLUMNS if name in table.columns]
        result = await conn.execute(sa.select(*(table.c[n] for n in names)))
        values += [value for row in result.all() for value in row if value is not None]
    return values

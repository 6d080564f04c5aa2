"""Storage fixtures over real databases: a SQLite file always, PostgreSQL when configured.

Set TEST_DATABASE_URL (postgresql+asyncpg://...) to run every storage test on PostgreSQL as
well; an unreachable server then fails those tests instead of skipping them. Each
PostgreSQL test gets a schema of its own (search_path), so runs never see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.engine import create_engine
from storage.store import SqlStore, open_store

PG_URL = os.environ.get("TEST_DATABASE_URL") or None

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    *([pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)] if PG_URL else []),
]

needs_postgres = pytest.mark.skipif(PG_URL is None, reason="TEST_DATABASE_URL is not set")


@dataclass(frozen=True)
class Database:
    """A fresh, empty database for one test: its URL and the driver arguments it needs."""

    backend: str
    url: str
    connect_args: Mapping[str, Any] = field(default_factory=dict)
    schema: str | None = None  # PostgreSQL only: where this test's tables live

    def engine(self) -> AsyncEngine:
        """A new engine on this database (the caller disposes it)."""
        return create_engine(self.url, connect_args=self.connect_args)


@asynccontextmanager
async def _pg_schema() -> AsyncIterator[Database]:
    """A new schema in TEST_DATABASE_URL, dropped afterwards."""
    assert PG_URL is not None, "TEST_DATABASE_URL is not set"
    schema = f"test_storage_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        # Only this schema on the path: tables and alembic_version are created there.
        args = {"server_settings": {"search_path": schema}}
        try:
            yield Database("postgres", PG_URL, args, schema)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database on each configured backend."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        return
    async with _pg_schema() as pg:
        yield pg


@pytest.fixture
async def pg_database() -> AsyncIterator[Database]:
    """An empty PostgreSQL schema of its own."""
    async with _pg_schema() as pg:
        yield pg


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlStore]:
    """A migrated store on each configured backend."""
    async with open_store(database.url, connect_args=database.connect_args) as opened:
        yield opened


@pytest.fixture
async def pg_store(pg_database: Database) -> AsyncIterator[SqlStore]:
    """A migrated store on PostgreSQL."""
    async with open_store(pg_database.url, connect_args=pg_database.connect_args) as opened:
        yield opened

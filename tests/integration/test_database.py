"""Units of work: a PostgreSQL connection closed while it sat in the pool costs one retry,
not a failed turn (the pool does not ping at every checkout)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.models import StoredUser
from storage.store import open_store
from tests.integration.conftest import PG_URL, Database, needs_postgres


@needs_postgres
async def test_connections_the_server_closed_are_replaced_and_the_unit_runs_again(
    pg_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"samsar-test-{uuid.uuid4().hex[:8]}"
    args = {
        "server_settings": {**pg_database.connect_args["server_settings"], "application_name": name}
    }
    assert PG_URL is not None
    admin = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with open_store(pg_database.url, connect_args=args) as store:
            user = StoredUser("discord:1", "discord", "discord", "1")
            await store.users.save(user)  # the pool now holds an open connection
            async with admin.connect() as conn:
                killed = await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": name},
                )
                assert killed.scalar_one() >= 1
            with caplog.at_level(logging.WARNING, logger="storage.database"):
                assert await store.users.get("discord:1") == user  # one statement, autocommit
                await store.users.save(user)
                assert await store.turns.claim_some("w", ["discord"], timedelta(seconds=5), 4) == []
            assert "database connection lost" in caplog.text
    finally:
        await admin.dispose()

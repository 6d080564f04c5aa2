"""What tests read straight from the turn ledger: open turns, and every turn's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

OPEN = ("received", "running", "completed")


async def turn_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every turn row (status, runs, delivery attempts, event key...), oldest first."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT turn_id, event_key, status, runs, delivery_attempts, error, posted"
                " FROM turns ORDER BY created_at"
            )
        )
        return [dict(row._mapping) for row in result]


async def open_turns(engine: AsyncEngine) -> int:
    """How many turns are not finished yet."""
    return len([row for row in await turn_rows(engine) if row["status"] in OPEN])


async def wait_for_turns(
    engine: AsyncEngine,
    predicate: Callable[[list[dict[str, Any]]], bool],
    *,
    within: float = 20.0,
    what: str = "the turns",
) -> list[dict[str, Any]]:
    """Poll the ledger until `predicate(rows)` holds (a deadline, not a guess)."""
    try:
        async with asyncio.timeout(within):
            # Polling the database under the deadline above.
            while not predicate(rows := await turn_rows(engine)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}: {await turn_rows(engine)}") from None
    return rows


def statuses(rows: Collection[dict[str, Any]]) -> list[str]:
    """The status of each row, in order."""
    return [row["status"] for row in rows]

"""The turn ledger on SQL: record, claim with a lease, store the outcome, finish, prune.

Claims are row updates guarded by their own condition (compare and set), so of several
workers exactly one gets a turn, on SQLite and PostgreSQL alike; no connection is held
while a turn runs. On PostgreSQL a claim also takes a transaction-level advisory lock on the
thread for the instant of the claim, so two replicas can never start two turns of one thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, and_, delete, exists, func, insert, literal, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import BotError
from core.models import Reply, SamsarCall, Turn, TurnStatus
from storage.repositories import Sessions
from storage.tables import TurnImageRow, TurnRow, utcnow
from storage.turn_codec import (
    dump_call,
    dump_error,
    dump_reply,
    dump_request,
    image_rows,
    to_turn,
)

log = logging.getLogger(__name__)

OPEN = tuple(s.value for s in TurnStatus if s.open)
DONE = (TurnStatus.DELIVERED.value, TurnStatus.FAILED.value)
_CANDIDATES = 4  # rows looked at per claim when others are being taken at the same moment
_turns = TurnRow.__table__  # type: ignore[attr-defined]


def thread_lock_key(thread_key: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock` (the same in every replica)."""
    digest = hashlib.blake2b(thread_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _runnable(platforms: Collection[str], now: datetime) -> ColumnElement[bool]:
    """Open, for these platforms, lease free or expired, retry due, first of its thread."""
    other = _turns.alias("other")
    t = _turns.c
    return and_(
        t.status.in_(OPEN),
        t.platform.in_(list(platforms)),
        or_(t.lease_expires_at.is_(None), t.lease_expires_at < now),
        or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
        ~exists().where(
            other.c.thread_key == t.thread_key,
            other.c.turn_id != t.turn_id,
            other.c.status.in_(OPEN),
            or_(
                other.c.created_at < t.created_at,
                and_(other.c.created_at == t.created_at, other.c.turn_id < t.turn_id),
                other.c.lease_expires_at > now,  # a turn of the thread is running
            ),
        ),
    )


class SqlTurnLedger:
    """core.ports.TurnLedger over SQLAlchemy; `now` is the clock leases are measured by."""

    def __init__(
        self, sessions: Sessions, dialect: str, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._now = now

    async def record(self, turn: Turn) -> bool:
        """Insert a received turn; False (and nothing written) when its event_key exists."""
        values = {
            "turn_id": turn.turn_id,
            "event_key": turn.event_key,
            "platform": turn.platform,
            "thread_key": turn.thread_key,
            "user_key": turn.user_key,
            "kind": turn.kind,
            "status": turn.status.value,
            "created_at": turn.created_at or self._now(),
            "request": dump_request(turn.request) if turn.request else None,
            "route": turn.route,
            "posted": turn.posted,
        }
        if turn.error is not None:  # refused at intake: to be told, nothing to run
            values["status"] = TurnStatus.COMPLETED.value
            values["error"] = dump_error(turn.error)
            values["completed_at"] = values["created_at"]
        try:
            async with self._sessions.begin() as session:
                await session.exec(insert(TurnRow).values(values))
        except IntegrityError:
            # The loser of a race sees the winner's committed row here; anything else (a
            # clashing turn_id) is a bug upstream and must not pass for a duplicate event.
            if await self.get(turn.event_key) is None:
                raise
            log.debug("duplicate event key", extra={"event_key": turn.event_key})
            return False
        return True

    async def claim(self, owner: str, platforms: Collection[str], lease: timedelta) -> Turn | None:
        """Lease the oldest turn that has work to do, or None."""
        if not platforms:
            return None
        now = self._now()
        runnable = _runnable(platforms, now)
        query = (
            select(TurnRow)
            .where(runnable)
            .order_by(col(TurnRow.created_at), col(TurnRow.turn_id))
            .limit(_CANDIDATES)
        )
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=TurnRow)
        async with self._sessions.begin() as session:
            for row in (await session.exec(query)).all():
                seen = to_turn(row)  # before the update below refreshes the row in the session
                if self._dialect == "postgresql":
                    key = literal(thread_lock_key(seen.thread_key), BigInteger)
                    await session.exec(select(func.pg_advisory_xact_lock(key)))
                runs = seen.status is not TurnStatus.COMPLETED
                claimed = dataclasses.replace(
                    seen,
                    status=TurnStatus.RUNNING if runs else seen.status,
                    lease_owner=owner,
                    lease_expires_at=now + lease,
                    runs=seen.runs + (1 if runs else 0),
                )
                taken = await session.exec(
                    update(TurnRow)
                    .where(col(TurnRow.turn_id) == seen.turn_id, runnable)
                    .values(
                        status=claimed.status.value,
                        lease_owner=owner,
                        lease_expires_at=claimed.lease_expires_at,
                        runs=claimed.runs,
                    )
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount != 1:
                    continue
                if row.reply:
                    images = await self._images(session, seen.turn_id)
                    claimed = dataclasses.replace(claimed, reply=to_turn(row, images).reply)
                return claimed
        return None

    async def renew(self, turn_id: str, owner: str, lease: timedelta) -> bool:
        """Extend the lease; False when it is no longer `owner`'s."""
        return await self._owned_update(turn_id, owner, lease_expires_at=self._now() + lease)

    async def save_call(self, turn_id: str, owner: str, call: SamsarCall) -> bool:
        """Keep the completion body fixed before the first Samsar call."""
        return await self._owned_update(turn_id, owner, call=dump_call(call))

    async def save_posted(self, turn_id: str, posted: str) -> None:
        """Keep what the adapter has posted so far for this turn."""
        async with self._sessions.begin() as session:
            await session.exec(
                update(TurnRow).where(col(TurnRow.turn_id) == turn_id).values(posted=posted)
            )

    async def complete(
        self,
        turn_id: str,
        owner: str,
        outcome: Reply | BotError,
        *,
        latency_ms: int | None,
    ) -> bool:
        """Store the outcome (status completed); False when the lease was lost."""
        values: dict[str, object] = {
            "status": TurnStatus.COMPLETED.value,
            "completed_at": self._now(),
            "latency_ms": latency_ms,
        }
        if isinstance(outcome, Reply):
            values["reply"] = dump_reply(outcome)
            values["credits_charged"] = outcome.credits.charged
        else:
            values["error"] = dump_error(outcome)
        async with self._sessions.begin() as session:
            result = await session.exec(
                update(TurnRow)
                .where(
                    col(TurnRow.turn_id) == turn_id,
                    col(TurnRow.lease_owner) == owner,
                    col(TurnRow.status).in_((TurnStatus.RECEIVED.value, TurnStatus.RUNNING.value)),
                )
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            if isinstance(outcome, Reply) and outcome.images:
                await session.exec(
                    insert(TurnImageRow),
                    params=[row.model_dump() for row in image_rows(turn_id, outcome)],
                )
        return True

    async def postpone(
        self, turn_id: str, owner: str, *, retry_at: datetime, delivery_attempts: int
    ) -> None:
        """A delivery failed: free the lease until `retry_at`."""
        await self._owned_update(
            turn_id,
            owner,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=retry_at,
            delivery_attempts=delivery_attempts,
        )

    async def release(self, turn_id: str, owner: str) -> None:
        """Give the lease up now: another worker may resume the turn at once."""
        await self._owned_update(turn_id, owner, lease_owner=None, lease_expires_at=None)

    async def finish(self, turn_id: str, owner: str, status: TurnStatus) -> None:
        """Delivered or failed; the reply's image bytes are no longer needed."""
        async with self._sessions.begin() as session:
            result = await session.exec(
                update(TurnRow)
                .where(col(TurnRow.turn_id) == turn_id, col(TurnRow.lease_owner) == owner)
                .values(
                    status=status.value,
                    finished_at=self._now(),
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=None,
                )
            )
            if result.rowcount == 1:
                await session.exec(delete(TurnImageRow).where(col(TurnImageRow.turn_id) == turn_id))
        if result.rowcount != 1:
            log.warning("finish of a turn not held", extra={"turn_id": turn_id})

    async def get(self, event_key: str) -> Turn | None:
        """The turn of an event key, or None."""
        async with self._sessions() as session:
            query = select(TurnRow).where(col(TurnRow.event_key) == event_key)
            row = (await session.exec(query)).first()
            images = await self._images(session, row.turn_id) if row and row.reply else []
        return None if row is None else to_turn(row, images)

    async def load(self, turn_id: str) -> Turn | None:
        """The turn by id, with its outcome, or None."""
        async with self._sessions() as session:
            row = await session.get(TurnRow, turn_id)
            images = await self._images(session, turn_id) if row and row.reply else []
        return None if row is None else to_turn(row, images)

    async def first_open_in_thread(self, thread_key: str) -> Turn | None:
        """The thread's oldest turn not finished yet, or None."""
        query = (
            select(TurnRow)
            .where(col(TurnRow.thread_key) == thread_key, col(TurnRow.status).in_(OPEN))
            .order_by(col(TurnRow.created_at), col(TurnRow.turn_id))
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.exec(query)).first()
        return None if row is None else to_turn(row)

    async def prune(self, before: datetime) -> int:
        """Delete delivered and failed turns finished before `before`; how many went."""
        old = select(col(TurnRow.turn_id)).where(
            col(TurnRow.status).in_(DONE), col(TurnRow.finished_at) < before
        )
        async with self._sessions.begin() as session:
            await session.exec(delete(TurnImageRow).where(col(TurnImageRow.turn_id).in_(old)))
            result = await session.exec(delete(TurnRow).where(col(TurnRow.turn_id).in_(old)))
        return int(result.rowcount or 0)

    async def _owned_update(self, turn_id: str, owner: str, **values: object) -> bool:
        async with self._sessions.begin() as session:
            result = await session.exec(
                update(TurnRow)
                .where(
                    col(TurnRow.turn_id) == turn_id,
                    col(TurnRow.lease_owner) == owner,
                    col(TurnRow.status).in_(OPEN),
                )
                .values(**values)
            )
        return bool(result.rowcount == 1)

    @staticmethod
    async def _images(session: AsyncSession, turn_id: str) -> list[TurnImageRow]:
        query = select(TurnImageRow).where(col(TurnImageRow.turn_id) == turn_id)
        return list((await session.exec(query)).all())

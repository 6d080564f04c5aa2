"""The turn ledger on SQL: record, claim with a lease, store the outcome, finish, prune.

Claims are row updates guarded by their own condition (compare and set), so of several
workers exactly one gets a turn, on SQLite and PostgreSQL alike; no connection is held
while a turn runs. Every call is one unit of work on the store's `Database` (on SQLite one hop
to its thread). A claim is one `UPDATE … RETURNING` (on PostgreSQL over candidates locked with
`FOR UPDATE SKIP LOCKED`). A thread's turns are numbered at insert (`seq`, unique per thread,
one more than the highest committed): only the lowest open number of a thread can be claimed,
and that is the same turn in every snapshot, so two replicas never start two turns of a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Connection,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Delete, Insert
from sqlalchemy.sql.elements import ColumnElement

from core.errors import BotError
from core.models import (
    Rate,
    Recorded,
    Reply,
    SamsarCall,
    Take,
    ThreadRef,
    Turn,
    TurnStatus,
    WaitingTurn,
)
from core.ports import Finished, FixCall
from storage import direct
from storage.database import Database
from storage.repositories import (
    ADVANCE,
    advance_params,
    in_force_of,
    in_statements,
    session_in_force_and,
    sessions_in_force,
    take_token,
    thread_params,
    token_cte,
    token_params,
)
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
_turns = TurnRow.__table__  # type: ignore[attr-defined]
_images = TurnImageRow.__table__  # type: ignore[attr-defined]
_t = _turns.c
_COMPLETED = TurnStatus.COMPLETED.value
# A turn numbered at the same moment as another of its thread tries again (one of them always
# wins, so N replicas writing one thread at once need at most N tries), after a short pause.
_INSERT_TRIES = 30
_INSERT_PAUSE = 0.002

P = ParamSpec("P")
T = TypeVar("T")


def _among(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    """`column` is one of `values`, written into the SQL (not bound): no list to expand at
    every execution, and PostgreSQL can use the partial index of open turns in every plan,
    generic ones too."""
    return column.in_([literal_column(f"'{value}'") for value in values])


def _open(status: ColumnElement[str]) -> ColumnElement[bool]:
    """`status` is an open one."""
    return _among(status, OPEN)


def _platform_binds(count: int) -> list[BindParameter[str]]:
    """One bind parameter per platform asked (`platform_0`, ...): a list that is not expanded
    at every execution; statements are built once per number of platforms."""
    return [bindparam(f"platform_{n}", type_=String()) for n in range(count)]


def _platform_params(platforms: Collection[str]) -> dict[str, str]:
    return {f"platform_{n}": platform for n, platform in enumerate(platforms)}


def _runnable(platforms: int) -> ColumnElement[bool]:
    """Open, for the platforms asked, lease free or expired, retry due, first of its thread
    (bind parameters: the platforms', `now`)."""
    other = _turns.alias("other")
    now = bindparam("now", type_=_t.created_at.type)
    return and_(
        _open(_t.status),
        _t.platform.in_(_platform_binds(platforms)),
        or_(_t.lease_expires_at.is_(None), _t.lease_expires_at < now),
        or_(_t.next_attempt_at.is_(None), _t.next_attempt_at <= now),
        ~exists().where(
            other.c.thread_key == _t.thread_key,
            other.c.turn_id != _t.turn_id,
            _open(other.c.status),
            or_(
                other.c.seq < _t.seq,
                other.c.lease_expires_at > now,  # a turn of the thread is running
            ),
        ),
    )


_earlier = _turns.alias("earlier")
# A claim: a completed turn keeps its status (it is delivered, not run); any other one runs.
_CLAIM_VALUES = {
    "status": case((_t.status == _COMPLETED, _t.status), else_=TurnStatus.RUNNING.value),
    "runs": _t.runs + case((_t.status == _COMPLETED, 0), else_=1),
    "lease_owner": bindparam("owner"),
    "lease_expires_at": bindparam("until", type_=_t.lease_expires_at.type),
}


@functools.cache
def _claim_statement(dialect: str, platforms: int) -> Update:
    """The claim of up to `limit` runnable turns of `platforms` platforms, on `dialect`."""
    runnable = _runnable(platforms)
    candidates = (
        select(_t.turn_id)
        .where(runnable)
        .order_by(_t.created_at, _t.turn_id)
        .limit(bindparam("limit", type_=BigInteger))
        .correlate(None)  # its own FROM turns, not the UPDATE's row
    )
    if dialect != "postgresql":  # SQLite runs the subquery once, in the writer's lock.
        return (
            update(_turns)
            .where(_t.turn_id.in_(candidates.scalar_subquery()))
            .values(_CLAIM_VALUES)
            .returning(*_turns.c)
        )
    # PostgreSQL: candidates that another claim holds are passed over, and they are chosen
    # once (materialized: a subquery under IN may be run again per row and take more than
    # `limit`); the condition is checked again on each row itself, for a candidate claimed
    # meanwhile.
    picked = (
        candidates.with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(_turns)
        .where(_t.turn_id == picked.c.turn_id, runnable)
        .values(_CLAIM_VALUES)
        .returning(*_turns.c)
    )


_OWNED = and_(
    _t.turn_id == bindparam("id"), _t.lease_owner == bindparam("holder"), _open(_t.status)
)
# The updates of a turn its lease holder makes (bind names apart from the columns').
_RENEW = (
    update(_turns)
    .where(_OWNED)
    .values(lease_expires_at=bindparam("until", type_=_t.lease_expires_at.type))
)
_SAVE_CALL = update(_turns).where(_OWNED).values(call=bindparam("call_json", type_=_t.call.type))
_RELEASE = update(_turns).where(_OWNED).values(lease_owner=None, lease_expires_at=None)
_POSTPONE = (
    update(_turns)
    .where(_OWNED)
    .values(
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=bindparam("retry_at", type_=_t.next_attempt_at.type),
        delivery_attempts=bindparam("attempts"),
    )
)
_IMAGES_OF = select(_images).where(_images.c.turn_id == bindparam("id"))
_NEXT_SEQ = (
    select(func.coalesce(func.max(_t.seq), 0) + 1)
    .where(_t.thread_key == bindparam("seq_thread_key"))
    .scalar_subquery()
)
_INSERT_TURN = insert(_turns).values(seq=_NEXT_SEQ)
# A turn taken by its recorder (`record_in_thread(take=)`): leased to it as it is written when
# no turn of its thread is open, judged by the insert itself, in the snapshot that numbers it
# (two replicas recording one thread at once pick one number: one insert fails, and runs
# again seeing the other's turn).
_QUIET = ~exists().where(_t.thread_key == bindparam("seq_thread_key"), _open(_t.status))
_TAKEN: dict[str, ColumnElement[Any]] = {
    "status": case(
        (_QUIET, literal_column(f"'{TurnStatus.RUNNING.value}'")),
        else_=literal_column(f"'{TurnStatus.RECEIVED.value}'"),
    ),
    "runs": case((_QUIET, literal_column("1")), else_=literal_column("0")),
    "lease_owner": case((_QUIET, bindparam("take_owner", type_=String)), else_=null()),
    "lease_expires_at": case(
        (_QUIET, bindparam("take_until", type_=_t.lease_expires_at.type)), else_=null()
    ),
}
_INSERT_TAKEN = insert(_turns).values(seq=_NEXT_SEQ, **_TAKEN).returning(*_turns.c)
_NOT_VALUES = frozenset({"seq_thread_key", "take_owner", "take_until"})


@functools.cache
def _insert_with_token(columns: tuple[str, ...], taking: bool) -> Insert:
    """PostgreSQL: the insert of a turn whose values name `columns`, made only when a token is
    taken from its member's bucket in the same statement (a data-modifying `WITH`): one
    round trip, and no token taken for an insert that fails. Returns a row when made (the
    whole row when `taking`, as `_INSERT_TAKEN`)."""
    token = token_cte()
    named = [name for name in columns if name not in _NOT_VALUES]
    # Bind names apart from the columns': the token's UPDATE would set a column its
    # parameters name (member_rates.user_key).
    binds = [bindparam(f"v_{name}", type_=_turns.c[name].type) for name in named]
    taken = list(_TAKEN.values()) if taking else []
    made = select(*binds, _NEXT_SEQ, *taken).where(exists(select(token.c.tokens)))
    into = [*named, "seq", *(_TAKEN if taking else [])]
    returned = _turns.c if taking else [_t.turn_id]
    return insert(_turns).from_select(into, made).add_cte(token).returning(*returned)


_BY_EVENT = select(_turns).where(_t.event_key == bindparam("event_key"))
# A record's reads: the thread's session (its owner, and what the turn's body would be), whether
# the event is in, and whether a turn of the thread is still to run (which would move the
# session on before this one runs).
_RECORD_FACTS = session_in_force_and(
    exists().where(_t.event_key == bindparam("event_key")).label("recorded"),
    exists()
    .where(
        _t.thread_key == bindparam("busy_thread_key"),
        _among(_t.status, (TurnStatus.RECEIVED.value, TurnStatus.RUNNING.value)),
    )
    .label("busy"),
)
_BY_ID = select(_turns).where(_t.turn_id == bindparam("id"))
_FIRST_OPEN_IN_THREAD = (
    select(_turns)
    .where(_t.thread_key == bindparam("thread_key"), _open(_t.status))
    .order_by(_t.seq)
    .limit(1)
)
_COMPLETE = (
    update(_turns)
    .where(
        _t.turn_id == bindparam("id"),
        _t.lease_owner == bindparam("holder"),
        _among(_t.status, (TurnStatus.RECEIVED.value, TurnStatus.RUNNING.value)),
    )
    .values(
        status=_COMPLETED,
        completed_at=bindparam("now", type_=_t.completed_at.type),
        latency_ms=bindparam("latency"),
        reply=bindparam("reply_json", type_=_t.reply.type),
        credits_charged=bindparam("credits"),
        error=bindparam("error_json", type_=_t.error.type),
    )
)
# PostgreSQL: the session moves in the same statement (a data-modifying WITH runs whatever
# the main statement finds), one round trip and one commit instead of two.
_COMPLETE_ADVANCING = _COMPLETE.add_cte(ADVANCE.returning(literal_column("1")).cte("advanced"))


def _id_binds(count: int) -> list[BindParameter[str]]:
    """`count` bind parameters `id_{n}`: a list not expanded at every execution."""
    return [bindparam(f"id_{n}", type_=String) for n in range(count)]


@functools.cache
def _finish_statement(count: int) -> Update:
    """The finish of `count` turns held by one worker, to one status; their ids come back."""
    return (
        update(_turns)
        .where(_t.turn_id.in_(_id_binds(count)), _t.lease_owner == bindparam("holder"))
        .values(
            status=bindparam("new_status"),
            finished_at=bindparam("now", type_=_t.finished_at.type),
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=None,
        )
        .returning(_t.turn_id)
    )


@functools.cache
def _drop_images_statement(count: int) -> Delete:
    return delete(_images).where(_images.c.turn_id.in_(_id_binds(count)))


@functools.cache
def _save_calls_statement(count: int) -> Update:
    """The completion bodies (`call_{n}`) of `count` turns (`id_{n}`) a holder keeps; their
    ids come back."""
    ids = _id_binds(count)
    body = case(
        *((_t.turn_id == ids[n], bindparam(f"call_{n}", type_=_t.call.type)) for n in range(count))
    )
    return (
        update(_turns)
        .where(_t.turn_id.in_(ids), _t.lease_owner == bindparam("holder"), _open(_t.status))
        .values(call=body)
        .returning(_t.turn_id)
    )


_INSERT_IMAGE_ROOM = insert(_images).values(data=func.zeroblob(bindparam("size", type_=BigInteger)))
_BLOB_SLICE = 1024 * 1024
_SAVE_FEEDBACK = (
    update(_turns)
    .where(_t.turn_id == bindparam("id"), _t.user_key == bindparam("member"))
    .values(feedback=bindparam("value"))
)
_SAVE_POSTED = update(_turns).where(_t.turn_id == bindparam("id")).values(posted=bindparam("value"))
_SAVE_POSTED_WHILE_WAITING = (
    update(_turns)
    .where(
        _t.turn_id == bindparam("id"),
        _t.status == TurnStatus.RECEIVED.value,
        _t.lease_owner.is_(None),
    )
    .values(posted=bindparam("value"))
)


@functools.cache
def _waiting_statement(platforms: int) -> Select[Any]:
    """Turns not started yet of `platforms` platforms, with where they stand in their thread."""
    return (
        select(
            _turns,
            exists()
            .where(
                _earlier.c.thread_key == _t.thread_key,
                _earlier.c.seq < _t.seq,
                _open(_earlier.c.status),
            )
            .label("behind"),
            exists()
            .where(
                _earlier.c.thread_key == _t.thread_key,
                _earlier.c.seq < _t.seq,
                _open(_earlier.c.status),
                _earlier.c.posted == "",
            )
            .label("after_unshown"),
        )
        .where(
            _t.status == TurnStatus.RECEIVED.value,
            _t.lease_owner.is_(None),
            _t.platform.in_(_platform_binds(platforms)),
        )
        .order_by(_t.created_at, _t.turn_id)
        .limit(bindparam("limit", type_=BigInteger))
    )


class SqlTurnLedger:
    """core.ports.TurnLedger over SQLAlchemy; `now` is the clock leases are measured by."""

    def __init__(self, db: Database, *, now: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._dialect = db.dialect
        self._now = now

    async def record(self, turn: Turn) -> bool:
        """Insert a received turn; False (and nothing written) when its event_key exists."""
        return await self._insert_new(turn, _insert, self._values(turn)) is not None

    def _values(self, turn: Turn) -> dict[str, Any]:
        values = {
            "turn_id": turn.turn_id,
            "event_key": turn.event_key,
            "platform": turn.platform,
            "thread_key": turn.thread_key,
            "seq_thread_key": turn.thread_key,
            "user_key": turn.user_key,
            "kind": turn.kind,
            "status": turn.status.value,
            "created_at": turn.created_at or self._now(),
            "request": dump_request(turn.request) if turn.request else None,
            "route": turn.route,
            "posted": turn.posted,
            "runs": 0,
            "delivery_attempts": 0,
            # A retry's completion body and key, taken over from the turn it asks again.
            "call": dump_call(turn.call) if turn.call is not None else None,
        }
        if turn.status.value in DONE:  # noted as done at once: pruned like any finished turn
            values["finished_at"] = values["created_at"]
        if turn.error is not None:  # refused at intake: to be told, nothing to run
            values["status"] = _COMPLETED
            values["error"] = dump_error(turn.error)
            values["completed_at"] = values["created_at"]
        return values

    async def record_in_thread(
        self,
        turn: Turn,
        thread: ThreadRef,
        *,
        rate: Rate | None = None,
        fix: FixCall | None = None,
        take: Take | None = None,
    ) -> Recorded:
        """`record`, unless the thread is another member's conversation or the member is over
        their `rate`; with `fix`, the body made now when it can be; with `take`, leased to its
        recorder when its thread is quiet (one unit of work)."""
        now = self._now()
        recorded = await self._insert_new(
            turn,
            _record_in_thread,
            turn,
            self._values(turn),
            thread_params(thread),
            rate,
            now.timestamp(),
            fix,
            take,
            now + take.lease if take is not None else now,
        )
        return Recorded(written=False) if recorded is None else recorded

    async def _insert_new(
        self,
        turn: Turn,
        work: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T | None:
        """Run a unit that inserts `turn`; None when its event was recorded before. When
        another replica numbered a turn of the same thread at the same moment, the unique
        number makes this insert fail: it runs again and takes the next number."""
        for attempt in range(1, _INSERT_TRIES + 1):
            try:
                return await self._db.run_autocommit(work, *args, **kwargs)
            except IntegrityError:
                # The loser of a race sees the winner's committed row here; anything else (a
                # clashing turn_id) is a bug upstream and must not pass for a duplicate event.
                if await self.get(turn.event_key) is not None:
                    log.debug("duplicate event key", extra={"event_key": turn.event_key})
                    return None
                if attempt == _INSERT_TRIES:
                    raise
                await asyncio.sleep(random.uniform(0, _INSERT_PAUSE * attempt))
        raise AssertionError("unreachable")

    async def claim(self, owner: str, platforms: Collection[str], lease: timedelta) -> Turn | None:
        """Lease the oldest turn that has work to do, or None."""
        claimed = await self.claim_some(owner, platforms, lease, 1)
        return claimed[0] if claimed else None

    async def claim_some(
        self,
        owner: str,
        platforms: Collection[str],
        lease: timedelta,
        limit: int,
        *,
        fix: FixCall | None = None,
        finished: Collection[Finished] = (),
    ) -> list[Turn]:
        """Lease up to `limit` turns that have work to do (each the first of its thread), oldest
        first; with `fix`, the completion body of those about to run is fixed in the same unit
        (see core.ports.TurnLedger)."""
        now = self._now()
        done = [self._finish_params(item.turn_id, owner, item.status, now) for item in finished]
        images = [item.images for item in finished]
        if not platforms or limit < 1:
            if done:
                await self._db.run_autocommit(_finish_all, done, images)
            return []
        params = {
            **_platform_params(platforms),
            "now": now,
            "limit": limit,
            "owner": owner,
            "until": now + lease,
        }
        claim = _claim_statement(self._dialect, len(platforms))
        return await self._db.run_autocommit(_claim, claim, params, fix, done, images)

    async def renew(self, turn_id: str, owner: str, lease: timedelta) -> bool:
        """Extend the lease; False when it is no longer `owner`'s."""
        return await self._owned_update(_RENEW, turn_id, owner, until=self._now() + lease)

    async def save_call(self, turn_id: str, owner: str, call: SamsarCall) -> bool:
        """Keep the completion body fixed before the first Samsar call."""
        return await self._owned_update(_SAVE_CALL, turn_id, owner, call_json=dump_call(call))

    async def save_feedback(self, turn_id: str, user_key: str, value: str) -> bool:
        """Keep the turn's member's 👍/👎 on its answer (the last one counts); False when the
        turn is gone or not theirs."""
        params = {"id": turn_id, "member": user_key, "value": value}
        return await self._db.run_autocommit(direct.rowcount, _SAVE_FEEDBACK, params) > 0

    async def save_posted(self, turn_id: str, posted: str) -> None:
        """Keep what the adapter has posted so far for this turn."""
        await self._db.run_autocommit(
            direct.rowcount, _SAVE_POSTED, {"id": turn_id, "value": posted}
        )

    async def save_posted_while_waiting(self, turn_id: str, posted: str) -> bool:
        """`save_posted`, only while the turn is received and not leased; True when kept."""
        params = {"id": turn_id, "value": posted}
        return bool(
            await self._db.run_autocommit(direct.rowcount, _SAVE_POSTED_WHILE_WAITING, params)
        )

    async def waiting(self, platforms: Collection[str], limit: int) -> list[WaitingTurn]:
        """Turns not started yet, oldest first, each with whether an earlier open turn of its
        thread is ahead of it, and whether those all show something already."""
        if not platforms:
            return []
        params = {**_platform_params(platforms), "limit": limit}
        return await self._db.run_autocommit(_waiting, _waiting_statement(len(platforms)), params)

    async def complete(
        self,
        turn_id: str,
        owner: str,
        outcome: Reply | BotError,
        *,
        latency_ms: int | None,
    ) -> bool:
        """Store the outcome (status completed); False when the lease was lost."""
        params: dict[str, Any] = {
            "id": turn_id,
            "holder": owner,
            "now": self._now(),
            "latency": latency_ms,
            "reply_json": None,
            "credits": None,
            "error_json": None,
        }
        images: list[dict[str, Any]] = []
        advance: dict[str, Any] | None = None
        if isinstance(outcome, Reply):
            params |= {"reply_json": dump_reply(outcome), "credits": outcome.credits.charged}
            images = [row.model_dump() for row in image_rows(turn_id, outcome)]
            if (moved := outcome.advance) is not None:
                advance = advance_params(
                    moved.thread, moved.session_id, moved.response_id, moved.prompt_fingerprint
                )
        else:
            params["error_json"] = dump_error(outcome)
        # Images go in with the outcome or not at all (a transaction); without images the two
        # statements need none: the session moves first, as it did before the outcome was kept.
        run = self._db.run if images else self._db.run_autocommit
        return await run(_complete, params, images, advance)

    async def postpone(
        self, turn_id: str, owner: str, *, retry_at: datetime, delivery_attempts: int
    ) -> None:
        """A delivery failed: free the lease until `retry_at`."""
        await self._owned_update(
            _POSTPONE, turn_id, owner, retry_at=retry_at, attempts=delivery_attempts
        )

    async def release(self, turn_id: str, owner: str) -> None:
        """Give the lease up now: another worker may resume the turn at once."""
        await self._owned_update(_RELEASE, turn_id, owner)

    async def finish(
        self, turn_id: str, owner: str, status: TurnStatus, *, images: bool = True
    ) -> None:
        """Delivered or failed; the reply's image bytes are no longer needed."""
        params = self._finish_params(turn_id, owner, status, self._now())
        await self._db.run_autocommit(_finish_all, [params], [images])

    @staticmethod
    def _finish_params(
        turn_id: str, owner: str, status: TurnStatus, now: datetime
    ) -> dict[str, Any]:
        return {"id": turn_id, "holder": owner, "new_status": status.value, "now": now}

    async def get(self, event_key: str) -> Turn | None:
        """The turn of an event key, or None."""
        return await self._db.run_autocommit(_one_turn, _BY_EVENT, {"event_key": event_key})

    async def load(self, turn_id: str) -> Turn | None:
        """The turn by id, with its outcome, or None."""
        return await self._db.run_autocommit(_one_turn, _BY_ID, {"id": turn_id})

    async def first_open_in_thread(self, thread_key: str) -> Turn | None:
        """The thread's oldest turn not finished yet, or None."""
        return await self._db.run_autocommit(
            _one_turn, _FIRST_OPEN_IN_THREAD, {"thread_key": thread_key}, with_images=False
        )

    async def prune(self, before: datetime) -> int:
        """Delete delivered and failed turns finished before `before`; how many went."""
        return await self._db.run(_prune, before)

    async def _owned_update(self, stmt: Update, turn_id: str, owner: str, **values: Any) -> bool:
        params = {"id": turn_id, "holder": owner, **values}
        return bool(await self._db.run_autocommit(direct.rowcount, stmt, params))


# --- units of work -----------------------------------------------------------------------


def _insert(conn: Connection, values: dict[str, Any]) -> bool:
    conn.execute(_INSERT_TURN, values)
    return True


def _record_in_thread(
    conn: Connection,
    turn: Turn,
    values: dict[str, Any],
    thread: dict[str, str],
    rate: Rate | None,
    now: float,
    fix: FixCall | None,
    take: Take | None,
    until: datetime,
) -> Recorded:
    facts = {
        **thread,
        "event_key": turn.event_key,
        "user_key": turn.user_key,
        "busy_thread_key": turn.thread_key,
    }
    (found,) = direct.fetch(conn, _RECORD_FACTS, facts)
    owner: tuple[str, str | None] | None = None
    if found.owner_key is not None:
        owner = (found.owner_key, found.owner_display)
    else:
        first = conn.execute(_FIRST_OPEN_IN_THREAD, {"thread_key": values["thread_key"]}).first()
        if first is not None:
            request = to_turn(first).request
            owner = (first.user_key, request.user.label if request else None)
    if owner is not None and owner[0] != values["user_key"]:
        return Recorded(written=False, owner=owner)
    if found.recorded:
        return Recorded(written=False)  # a redelivery (nor does it count against the rate)
    if fix is not None and not found.busy and values["call"] is None:
        values = _fixed_at_record(turn, values, found._mapping, fix)
    # Only a turn to run is taken (one refused at intake is written completed).
    taking = take if values["status"] == TurnStatus.RECEIVED.value else None
    if taking is not None:
        values = {name: value for name, value in values.items() if name not in _TAKEN}
        values |= {"take_owner": taking.owner, "take_until": until}
    tried = False
    if rate is not None and conn.dialect.name == "postgresql":
        params = {f"v_{name}": value for name, value in values.items()}
        params |= {name: values[name] for name in _NOT_VALUES if name in values}
        params |= token_params(values["user_key"], rate, now)
        made = direct.fetch(conn, _insert_with_token(tuple(values), taking is not None), params)
        if made:
            return _recorded(made[0], taking)
        # No token taken: the member's first turn (no bucket yet), or over their rate.
        tried = True
    if rate is not None and (wait := take_token(conn, values["user_key"], rate, now, tried=tried)):
        return Recorded(written=False, wait=wait)
    if taking is not None:
        (taken,) = direct.fetch(conn, _INSERT_TAKEN, values)
        return _recorded(taken, taking)
    direct.rowcount(conn, _INSERT_TURN, values)
    return Recorded(written=True)


def _recorded(row: direct.AnyRow, take: Take | None) -> Recorded:
    """A turn written: `taken` when its recorder holds its lease."""
    if take is None or row.lease_owner != take.owner:
        return Recorded(written=True)
    return Recorded(written=True, taken=to_turn(row))


def _fixed_at_record(
    turn: Turn, values: dict[str, Any], found: Mapping[Any, Any], fix: FixCall
) -> dict[str, Any]:
    """`values` with the turn's completion body, when its thread is on a session and no turn
    of it is left to run before this one (which would move the session on): its claim then
    reads nothing. A shortcut only: where it fails, the claim or the run fixes the body."""
    request = turn.request
    if request is None or turn.status is not TurnStatus.RECEIVED or turn.error is not None:
        return values
    try:
        hit = in_force_of(request.thread, found)
        call = fix(turn, *hit) if hit is not None else None
    except Exception:
        log.warning("completion body not fixed at record", extra=_turn_ids(turn), exc_info=True)
        return values
    return values if call is None else {**values, "call": dump_call(call)}


def _with_images(conn: Connection, row: direct.AnyRow) -> Turn:
    images = conn.execute(_IMAGES_OF, {"id": row.turn_id}).all() if row.reply else []
    return to_turn(row, images)


def _claim(
    conn: Connection,
    claim: Update,
    params: dict[str, Any],
    fix: FixCall | None,
    done: list[dict[str, Any]],
    images: list[bool],
) -> list[Turn]:
    _finish_all(conn, done, images)
    turns = [_with_images(conn, row) for row in direct.fetch(conn, claim, params)]
    if fix is not None:
        turns = _fixed(conn, turns, params["owner"], fix)
    return _oldest_first(turns)


def _fixed(conn: Connection, turns: list[Turn], owner: str, fix: FixCall) -> list[Turn]:
    """`turns`, each with its completion body when it is to run, has none, and its thread a
    session: the sessions read in one statement, the bodies kept in one (under the lease just
    taken, in autocommit as `save_call` is)."""
    todo = [
        (turn, turn.request)
        for turn in turns
        if turn.status is TurnStatus.RUNNING and turn.call is None and turn.request is not None
    ]
    if not todo:
        return turns
    # A shortcut only: where it fails, the claim stands and the run fixes the body (or fails).
    calls: dict[str, SamsarCall] = {}
    try:
        found = sessions_in_force(conn, [request.thread for _, request in todo])
    except Exception:
        log.warning("completion bodies not fixed at claim", exc_info=True)
        return turns
    for turn, request in todo:
        try:
            if (hit := found.get(request.thread)) and (call := fix(turn, *hit)) is not None:
                calls[turn.turn_id] = call
        except Exception:
            log.warning("completion body not fixed at claim", extra=_turn_ids(turn), exc_info=True)
    try:
        saved = _save_calls(conn, owner, calls) if calls else set()
    except Exception:
        log.warning("completion bodies not fixed at claim", exc_info=True)
        return turns
    return [
        dataclasses.replace(turn, call=calls[turn.turn_id]) if turn.turn_id in saved else turn
        for turn in turns
    ]


def _save_calls(conn: Connection, owner: str, calls: dict[str, SamsarCall]) -> set[str]:
    """Keep the bodies of turns `owner` holds; the ids of those kept."""
    saved: set[str] = set()
    for some in in_statements(list(calls.items())):
        params: dict[str, Any] = {"holder": owner}
        for n, (turn_id, call) in enumerate(some):
            params |= {f"id_{n}": turn_id, f"call_{n}": dump_call(call)}
        saved.update(conn.execute(_save_calls_statement(len(some)), params).scalars())
    return saved


def _turn_ids(turn: Turn) -> dict[str, str]:
    return {"turn_id": turn.turn_id, "thread_key": turn.thread_key}


def _waiting(conn: Connection, stmt: Select[Any], params: dict[str, Any]) -> list[WaitingTurn]:
    return [
        WaitingTurn(to_turn(row), bool(row.behind), in_order=not row.after_unshown)
        for row in conn.execute(stmt, params)
    ]


def _oldest_first(turns: Sequence[Turn]) -> list[Turn]:
    return sorted(turns, key=lambda turn: (turn.created_at or datetime.min, turn.turn_id))


def _complete(
    conn: Connection,
    params: dict[str, Any],
    images: list[dict[str, Any]],
    advance: dict[str, Any] | None,
) -> bool:
    if advance is not None and conn.dialect.name == "postgresql":
        completed = direct.rowcount(conn, _COMPLETE_ADVANCING, {**params, **advance}) == 1
    else:
        if advance is not None:
            direct.rowcount(conn, ADVANCE, advance)
        completed = direct.rowcount(conn, _COMPLETE, params) == 1
    if not completed:
        return False
    if images and conn.dialect.name == "sqlite":
        for image in images:
            _insert_sqlite_image(conn, image)
    elif images:
        conn.execute(insert(_images), images)
    return True


def _insert_sqlite_image(conn: Connection, image: dict[str, Any]) -> None:
    """A picture's row with room for its bytes, then the bytes a slice at a time through an
    incremental blob: the standard driver copies a bound blob whole while it holds the GIL
    (about 30 ms of a stalled event loop for a 4096² picture); a slice written is a short
    hold, the copy itself runs with the GIL released."""
    values = dict(image)
    data: bytes = values.pop("data")
    rowid = conn.execute(_INSERT_IMAGE_ROOM, {**values, "size": len(data)}).lastrowid
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection) and rowid is not None
    with driver.blobopen("turn_images", "data", rowid) as blob:
        view = memoryview(data)
        for start in range(0, len(data), _BLOB_SLICE):
            blob.write(view[start : start + _BLOB_SLICE])


def _finish_all(conn: Connection, done: list[dict[str, Any]], images: list[bool]) -> None:
    """Finish turns, those of one holder and status in one statement, each under its own
    guard (in autocommit, image bytes a crash leaves behind go with their turn when it is
    pruned)."""
    groups: dict[tuple[str, str, datetime], list[str]] = {}
    for params in done:
        key = (params["holder"], params["new_status"], params["now"])
        groups.setdefault(key, []).append(params["id"])
    finished: set[str] = set()
    for (holder, status, now), ids in groups.items():
        for some in in_statements(ids):
            params = {"holder": holder, "new_status": status, "now": now} | _ids(some)
            finished.update(
                row[0] for row in direct.fetch(conn, _finish_statement(len(some)), params)
            )
    for params in done:
        if params["id"] not in finished:
            log.warning("finish of a turn not held", extra={"turn_id": params["id"]})
    drop = [params["id"] for params, kept in zip(done, images, strict=True) if kept]
    drop = [turn_id for turn_id in drop if turn_id in finished]
    for some in in_statements(drop):
        conn.execute(_drop_images_statement(len(some)), _ids(some))


def _ids(turn_ids: Sequence[str]) -> dict[str, str]:
    """The bind parameters `id_{n}` of `_id_binds`."""
    return {f"id_{n}": turn_id for n, turn_id in enumerate(turn_ids)}


def _one_turn(
    conn: Connection, stmt: Any, params: dict[str, Any], *, with_images: bool = True
) -> Turn | None:
    row = conn.execute(stmt, params).first()
    if row is None:
        return None
    return _with_images(conn, row) if with_images else to_turn(row)


def _prune(conn: Connection, before: datetime) -> int:
    old = select(_t.turn_id).where(_among(_t.status, DONE), _t.finished_at < before)
    conn.execute(delete(_images).where(_images.c.turn_id.in_(old)))
    return int(conn.execute(delete(_turns).where(_t.turn_id.in_(old))).rowcount or 0)

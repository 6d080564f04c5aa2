"""The turn ledger on real databases (SQLite always, PostgreSQL with TEST_DATABASE_URL):
dedupe, claims and leases, per-thread order, outcomes, delivery retries, pruning, migration."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.conversation.service import ConversationConfig, ConversationService
from core.errors import RateLimited
from core.models import (
    AdminPrompt,
    ChatUser,
    Credits,
    IncomingMessage,
    Rate,
    Recorded,
    Reply,
    ReplyImage,
    SamsarCall,
    SessionAdvance,
    StoredUser,
    Take,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnKind,
    TurnRequest,
    TurnStatus,
)
from core.ports import Finished, PromptsInForce
from core.turns.worker import WorkerConfig
from storage.engine import create_engine
from storage.store import SqlStore, open_store
from storage.tables import TurnImageRow, TurnRow
from tests.fakes import FakeSamsar
from tests.integration.conftest import Database, needs_postgres
from tests.turns import driving

ALICE = ChatUser("slack", "U1", workspace_id="T1", display_name="Alice")
LEASE = timedelta(seconds=30)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The ledger's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def thread(n: int = 1) -> ThreadRef:
    return ThreadRef("slack", "T1", "C1", f"{n}.0")


def turn(key: str, where: ThreadRef | None = None, *, platform: str = "slack") -> Turn:
    where = where or thread()
    request = TurnRequest(ALICE, where, f"text of {key}", TurnKind.ASK, attachments='[{"a": 1}]')
    return Turn(
        uuid.uuid4().hex,
        key,
        platform,
        where.key,
        ALICE.key,
        "ask",
        request=request,
        route='{"channel": "C1"}',
    )


@contextlib.contextmanager
def statements_sent(store: SqlStore) -> Iterator[list[str]]:
    """The statements `store` sends to its database while the block runs."""
    sent: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    engine = store.db.engines[0]
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


@pytest.fixture
async def clock_store(database: Database) -> AsyncIterator[tuple[SqlStore, Clock]]:
    clock = Clock()
    async with open_store(database.url, connect_args=database.connect_args, now=clock) as store:
        yield store, clock


async def test_record_keeps_the_request_and_drops_a_duplicate(store: SqlStore) -> None:
    first = turn("ev1")
    assert await store.turns.record(first) is True
    assert await store.turns.record(turn("ev1")) is False
    loaded = await store.turns.get("ev1")
    assert loaded is not None and loaded.turn_id == first.turn_id
    assert loaded.status is TurnStatus.RECEIVED and loaded.request == first.request
    assert loaded.route == first.route and loaded.posted == "" and loaded.runs == 0
    assert loaded.created_at is not None and loaded.created_at.utcoffset() == timedelta(0)
    assert await store.turns.get("missing") is None


async def test_a_retry_is_recorded_with_the_call_and_key_of_the_turn_it_asks_again(
    store: SqlStore,
) -> None:
    failed = turn("ev1")
    call = SamsarCall("sess-1", False, "be brief", "fp", of_turn=failed.turn_id)
    retry = dataclasses.replace(turn("ev2"), call=call)
    assert (await store.turns.record_in_thread(retry, thread())).written
    loaded = await store.turns.get("ev2")
    assert loaded is not None and loaded.call == call
    assert loaded.call.idempotency_key(loaded.turn_id) == f"turn-{failed.turn_id}"


async def test_record_in_thread_refuses_another_members_thread_and_writes_nothing(
    store: SqlStore,
) -> None:
    bob = ChatUser("slack", "U2", workspace_id="T1", display_name="Bob")

    def by(user: ChatUser, key: str, where: ThreadRef) -> Turn:
        made = turn(key, where)
        assert made.request is not None
        return dataclasses.replace(
            made, user_key=user.key, request=dataclasses.replace(made.request, user=user)
        )

    # Before its first answer, a thread belongs to the member whose open turn started it.
    assert await store.turns.record_in_thread(by(ALICE, "a1", thread(1)), thread(1)) == Recorded(
        written=True
    )
    refused = await store.turns.record_in_thread(by(bob, "b1", thread(1)), thread(1))
    assert refused == Recorded(written=False, owner=(ALICE.key, "Alice"))
    assert await store.turns.get("b1") is None
    # Once it has a session, the session's owner decides.
    await store.sessions.save(ThreadSession(thread(2), "sess-2", bob.key, "Bob"))
    refused = await store.turns.record_in_thread(by(ALICE, "a2", thread(2)), thread(2))
    assert refused == Recorded(written=False, owner=(bob.key, "Bob"))
    assert await store.turns.record_in_thread(by(bob, "b2", thread(2)), thread(2)) == Recorded(
        written=True
    )
    # A redelivery is not written again and names no owner.
    assert await store.turns.record_in_thread(by(bob, "b2", thread(2)), thread(2)) == Recorded(
        written=False
    )


async def test_a_clashing_turn_id_is_not_a_duplicate(store: SqlStore) -> None:
    original = turn("ev1")
    assert await store.turns.record(original)
    with pytest.raises(IntegrityError):
        await store.turns.record(dataclasses.replace(turn("ev2"), turn_id=original.turn_id))


async def test_concurrent_records_of_one_event_keep_one(store: SqlStore) -> None:
    results = await asyncio.gather(*(store.turns.record(turn("ev-race")) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    async with store.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(TurnRow).where(col(TurnRow.event_key) == "ev-race")
        )
    assert count == 1


async def test_a_thread_runs_one_turn_at_a_time_in_order_others_beside_it(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    store, clock = clock_store
    a1, a2, b1 = turn("a1", thread(1)), turn("a2", thread(1)), turn("b1", thread(2))
    for item in (a1, a2, b1):
        clock.tick(seconds=1)
        assert await store.turns.record(item)
    first = await store.turns.claim("w1", ["slack"], LEASE)
    second = await store.turns.claim("w2", ["slack"], LEASE)
    assert first is not None and second is not None
    assert (first.event_key, second.event_key) == ("a1", "b1")  # a2 waits behind a1
    assert first.status is TurnStatus.RUNNING and first.runs == 1 and first.lease_owner == "w1"
    assert await store.turns.claim("w3", ["slack"], LEASE) is None
    assert await store.turns.complete(first.turn_id, "w1", Reply("done"), latency_ms=5)
    assert await store.turns.claim("w3", ["slack"], LEASE) is None  # a1 is not delivered yet
    await store.turns.finish(first.turn_id, "w1", TurnStatus.DELIVERED)
    third = await store.turns.claim("w3", ["slack"], LEASE)
    assert third is not None and third.event_key == "a2"


async def test_a_claim_fixes_the_body_of_a_turn_whose_thread_has_a_session(
    store: SqlStore,
) -> None:
    bob = ChatUser("slack", "U2", workspace_id="T1", display_name="Bob")
    await store.sessions.save(ThreadSession(thread(1), "sess-1", ALICE.key, "Alice", None, "fp0"))
    await store.sessions.save(ThreadSession(thread(2), "sess-2", bob.key, "Bob"))
    await store.prompts.set(AdminPrompt("slack", "T1", "C1", "be brief", "admin"))
    await store.prompts.set(AdminPrompt("slack", "T1", "", "be kind", "owner"))
    await store.prompts.set(AdminPrompt("slack", "T1", "C9", "elsewhere", "admin"))
    await store.users.save(StoredUser(ALICE.key, "slack", "slack", "U1", persona="a pirate"))
    seen: list[tuple[str, str, PromptsInForce]] = []

    def fix(claimed: Turn, session: ThreadSession, in_force: PromptsInForce) -> SamsarCall | None:
        seen.append((claimed.event_key, session.session_id, in_force))
        if session.owner_key != claimed.user_key:
            return None
        return SamsarCall(session.session_id, False, "be brief", "fp1")

    retry = SamsarCall("sess-0", False, None, None, of_turn="earlier")
    for made in (turn("warm", thread(1)), turn("bobs", thread(2)), turn("cold", thread(3))):
        assert await store.turns.record(made)
    assert await store.turns.record(dataclasses.replace(turn("retry", thread(4)), call=retry))
    claimed = {
        t.event_key: t for t in await store.turns.claim_some("w", ["slack"], LEASE, 9, fix=fix)
    }
    assert claimed["warm"].call == SamsarCall("sess-1", False, "be brief", "fp1")
    assert claimed["bobs"].call is None and claimed["cold"].call is None  # left to the run
    assert claimed["retry"].call == retry  # a body it had is kept
    asked = {key: (session_id, in_force) for key, session_id, in_force in seen}
    assert set(asked) == {"warm", "bobs"}  # "cold" has no session yet, "retry" a body
    assert asked["warm"][0] == "sess-1" and asked["bobs"][0] == "sess-2"
    workspace, channel, persona = asked["warm"][1]
    assert workspace is not None and (workspace.text, workspace.updated_by) == ("be kind", "owner")
    assert workspace.channel_id == "" and workspace.updated_at is not None
    assert channel is not None and (channel.channel_id, channel.text) == ("C1", "be brief")
    assert persona == "a pirate"  # the turn's member's
    assert asked["warm"][1] == await store.prompts.in_force("slack", "T1", "C1", ALICE.key)
    stored = await store.turns.load(claimed["warm"].turn_id)
    assert stored is not None and stored.call == claimed["warm"].call  # kept: a resume sends it
    # A turn claimed to be delivered runs no more: no body is made for it.
    assert await store.turns.complete(claimed["cold"].turn_id, "w", Reply("hi"), latency_ms=1)
    await store.turns.release(claimed["cold"].turn_id, "w")
    await store.sessions.save(ThreadSession(thread(3), "sess-3", ALICE.key, "Alice"))
    seen.clear()
    again = await store.turns.claim_some("w2", ["slack"], LEASE, 9, fix=fix)
    assert [t.event_key for t in again] == ["cold"] and again[0].call is None and seen == []


async def test_turns_finished_with_a_claim_free_their_thread_for_that_same_claim(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    for made in (turn("a1", thread(1)), turn("a2", thread(1)), turn("b1", thread(2))):
        assert await store.turns.record(made)
    a1, b1 = await store.turns.claim_some("w", ["slack"], LEASE, 9)
    image = ReplyImage(b"\x89PNG\r\n\x1a\n", "image/png", "a.png", None)
    assert await store.turns.complete(a1.turn_id, "w", Reply("look", (image,)), latency_ms=1)
    assert await store.turns.complete(b1.turn_id, "w", Reply("hi"), latency_ms=1)
    done = [
        Finished(a1.turn_id, TurnStatus.DELIVERED),
        Finished(b1.turn_id, TurnStatus.FAILED, images=False),
        Finished("not-held", TurnStatus.DELIVERED),
    ]
    with caplog.at_level(logging.WARNING, logger="storage.turns"):
        [a2] = await store.turns.claim_some("w", ["slack"], LEASE, 9, finished=done)
    assert a2.event_key == "a2"  # a1, finished in the same unit, no longer holds it back
    assert "finish of a turn not held" in caplog.text
    for finished, status in ((a1, TurnStatus.DELIVERED), (b1, TurnStatus.FAILED)):
        stored = await store.turns.load(finished.turn_id)
        assert stored is not None and stored.status is status and stored.lease_owner is None
        assert stored.finished_at is not None
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(TurnImageRow)) == 0
    # With no place free, the turns done are finished all the same.
    assert await store.turns.complete(a2.turn_id, "w", Reply("bye"), latency_ms=1)
    done = [Finished(a2.turn_id, TurnStatus.DELIVERED, images=False)]
    assert await store.turns.claim_some("w", ["slack"], LEASE, 0, finished=done) == []
    stored = await store.turns.load(a2.turn_id)
    assert stored is not None and stored.status is TurnStatus.DELIVERED


async def test_a_turn_recorded_on_a_quiet_thread_of_its_member_gets_its_body_at_once(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    bob = ChatUser("slack", "U2", workspace_id="T1", display_name="Bob")
    await store.sessions.save(ThreadSession(thread(1), "sess-1", ALICE.key, "Alice", None, "fp0"))
    await store.sessions.save(ThreadSession(thread(2), "sess-2", bob.key, "Bob"))
    await store.sessions.save(ThreadSession(thread(5), "sess-5", ALICE.key, "Alice"))
    await store.prompts.set(AdminPrompt("slack", "T1", "C1", "be brief", "admin"))
    await store.users.save(StoredUser(ALICE.key, "slack", "slack", "U1", persona="a pirate"))
    seen: list[tuple[str, str, PromptsInForce]] = []

    def fix(made: Turn, session: ThreadSession, in_force: PromptsInForce) -> SamsarCall:
        seen.append((made.event_key, session.session_id, in_force))
        if made.event_key == "broken":
            raise RuntimeError("cannot make a body")
        return SamsarCall(session.session_id, False, "be brief", f"fp-{made.event_key}")

    rate = Rate(per_second=100, burst=100)

    async def record(key: str, where: ThreadRef) -> Recorded:
        return await store.turns.record_in_thread(turn(key, where), where, rate=rate, fix=fix)

    assert (await record("warm", thread(1))).written
    assert (await record("behind", thread(1))).written  # "warm" is still to run
    assert (await record("cold", thread(3))).written  # no session yet
    assert (await record("bobs", thread(2))).owner == (bob.key, "Bob")  # not hers
    with caplog.at_level(logging.WARNING, logger="storage.turns"):
        assert (await record("broken", thread(5))).written
    assert "completion body not fixed at record" in caplog.text
    asked = {key: (session_id, in_force) for key, session_id, in_force in seen}
    assert set(asked) == {"warm", "broken"}
    workspace, channel, persona = asked["warm"][1]
    assert workspace is None and channel is not None and channel.text == "be brief"
    assert persona == "a pirate"
    assert asked["warm"][1] == await store.prompts.in_force("slack", "T1", "C1", ALICE.key)
    calls = {key: (await store.turns.get(key)) for key in ("warm", "behind", "cold", "broken")}
    assert {key: made.call for key, made in calls.items() if made is not None} == {
        "warm": SamsarCall("sess-1", False, "be brief", "fp-warm"),
        "behind": None,  # fixed when claimed, once "warm" has moved the session on
        "cold": None,
        "broken": None,
    }
    # The claim of a turn with its body reads nothing more: one statement.
    seen.clear()
    with statements_sent(store) as statements:
        [warm] = await store.turns.claim_some("w", ["slack"], LEASE, 1, fix=fix)
    assert warm.event_key == "warm" and warm.call == calls["warm"].call  # type: ignore[union-attr]
    assert seen == [] and len(statements) == 1, statements


async def test_a_claim_of_many_turns_fixes_and_finishes_them_in_a_few_statements(
    store: SqlStore,
) -> None:
    # More than one statement takes (64): the rest go in a second one, none lost.
    many = 70
    for n in range(many):
        await store.sessions.save(ThreadSession(thread(n), f"sess-{n}", ALICE.key, "Alice"))
        assert await store.turns.record(turn(f"t{n}", thread(n)))

    def fix(claimed: Turn, session: ThreadSession, in_force: PromptsInForce) -> SamsarCall:
        return SamsarCall(session.session_id, False, None, f"fp-{claimed.event_key}")

    with statements_sent(store) as statements:
        claimed = await store.turns.claim_some("w", ["slack"], LEASE, 100, fix=fix)
    assert len(claimed) == many
    # the claim, the sessions (two statements), the bodies (two)
    assert len(statements) == 5, statements
    for made in claimed:
        assert made.call is not None and made.call.session_id == f"sess-{made.event_key[1:]}"
        assert await store.turns.complete(made.turn_id, "w", Reply("hi"), latency_ms=1)
    done = [Finished(made.turn_id, TurnStatus.DELIVERED, images=False) for made in claimed]
    with statements_sent(store) as statements:
        assert await store.turns.claim_some("w", ["slack"], LEASE, 100, finished=done) == []
    assert len(statements) == 3, statements  # two finishes (64 + 6), the claim
    for made in claimed:
        stored = await store.turns.load(made.turn_id)
        assert stored is not None and stored.status is TurnStatus.DELIVERED
        assert stored.call == made.call  # kept: a resume sends it


async def test_claims_are_per_platform(store: SqlStore) -> None:
    assert await store.turns.record(turn("d1", platform="discord"))
    assert await store.turns.claim("w", ["slack", "console"], LEASE) is None
    claimed = await store.turns.claim("w", ["discord"], LEASE)
    assert claimed is not None and claimed.event_key == "d1"


async def test_an_expired_lease_is_claimed_again_and_the_old_owner_cannot_write(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    store, clock = clock_store
    assert await store.turns.record(turn("ev1"))
    first = await store.turns.claim("dead", ["slack"], LEASE)
    assert first is not None
    call = SamsarCall("sess-1", True, "be brief", "fp", 0)
    assert await store.turns.save_call(first.turn_id, "dead", call)
    clock.tick(seconds=20)
    assert await store.turns.renew(first.turn_id, "dead", LEASE)  # renewed: still alive
    clock.tick(seconds=29)
    assert await store.turns.claim("alive", ["slack"], LEASE) is None
    clock.tick(seconds=2)  # 31 s since the renewal: expired
    resumed = await store.turns.claim("alive", ["slack"], LEASE)
    assert resumed is not None and resumed.turn_id == first.turn_id
    assert resumed.runs == 2 and resumed.call == call  # resumed with the same body and key
    assert not await store.turns.renew(first.turn_id, "dead", LEASE)
    assert not await store.turns.complete(first.turn_id, "dead", Reply("late"), latency_ms=1)
    assert await store.turns.complete(first.turn_id, "alive", Reply("answer"), latency_ms=1)
    stored = await store.turns.load(first.turn_id)
    assert stored is not None and stored.reply is not None and stored.reply.text == "answer"


async def test_outcomes_round_trip_and_a_completed_turn_is_claimed_for_delivery(
    store: SqlStore,
) -> None:
    assert await store.turns.record(turn("ok"))
    assert await store.turns.record(turn("err", thread(2)))
    ok = await store.turns.claim("w", ["slack"], LEASE)
    err = await store.turns.claim("w", ["slack"], LEASE)
    assert ok is not None and err is not None
    image = ReplyImage(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png", "a.png", "a fox")
    reply = Reply("look", (image,), Credits(2.5, 97), session_id="s1", new_session=True)
    assert await store.turns.complete(ok.turn_id, "w", reply, latency_ms=12)
    assert await store.turns.complete(
        err.turn_id, "w", RateLimited("slow", retry_after=3), latency_ms=1
    )
    await store.turns.release(ok.turn_id, "w")  # the worker stopped before delivering
    again = await store.turns.claim("w2", ["slack"], LEASE)
    assert again is not None and again.turn_id == ok.turn_id
    assert again.status is TurnStatus.COMPLETED and again.runs == 1  # delivery, not a new run
    assert again.reply == Reply("look", (image,), Credits(2.5, 97), "s1", ok.turn_id, True)
    assert again.credits_charged == 2.5 and again.latency_ms == 12
    failed = await store.turns.load(err.turn_id)
    assert failed is not None and isinstance(failed.error, RateLimited)
    assert failed.error.retry_after == 3 and failed.outcome is failed.error
    await store.turns.finish(ok.turn_id, "w2", TurnStatus.DELIVERED)
    async with store.engine.connect() as conn:
        kept = await conn.scalar(select(func.count()).select_from(TurnImageRow))
    assert kept == 0  # delivered: the image bytes are no longer kept


async def test_a_failed_delivery_waits_for_its_retry_time(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    store, clock = clock_store
    assert await store.turns.record(turn("ev1"))
    claimed = await store.turns.claim("w", ["slack"], LEASE)
    assert claimed is not None
    assert await store.turns.complete(claimed.turn_id, "w", Reply("hi"), latency_ms=1)
    await store.turns.save_posted(claimed.turn_id, '{"pieces": 1}')
    await store.turns.postpone(
        claimed.turn_id, "w", retry_at=clock.now + timedelta(seconds=4), delivery_attempts=1
    )
    assert await store.turns.claim("w", ["slack"], LEASE) is None
    clock.tick(seconds=4)
    due = await store.turns.claim("w", ["slack"], LEASE)
    assert due is not None and due.delivery_attempts == 1 and due.posted == '{"pieces": 1}'


async def test_prune_removes_only_old_finished_turns(clock_store: tuple[SqlStore, Clock]) -> None:
    store, clock = clock_store
    for n, key in enumerate(("old", "open")):
        clock.tick(seconds=1)
        assert await store.turns.record(turn(key, thread(n)))
    claimed = await store.turns.claim("w", ["slack"], LEASE)
    assert claimed is not None and claimed.event_key == "old"
    await store.turns.complete(claimed.turn_id, "w", Reply("x"), latency_ms=1)
    await store.turns.finish(claimed.turn_id, "w", TurnStatus.DELIVERED)
    clock.tick(days=31)
    assert await store.turns.prune(clock.now - timedelta(days=30)) == 1
    assert await store.turns.get("old") is None and await store.turns.get("open") is not None


async def test_an_event_noted_once_is_dropped_after_and_pruned_like_a_finished_turn(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    """Work that records no turn (a greeting) is noted so no replica does it twice."""
    store, clock = clock_store
    service = ConversationService(FakeSamsar(), store, ConversationConfig())
    assert await service.first_delivery("slack:assistant:D1:1.0", "slack") is True
    assert await service.first_delivery("slack:assistant:D1:1.0", "slack") is False
    assert await store.turns.claim("w", ["slack"], LEASE) is None  # nothing for a worker
    clock.tick(days=31)
    assert await store.turns.prune(clock.now - timedelta(days=30)) == 1


async def test_many_workers_claim_each_turn_exactly_once(database: Database) -> None:
    """Four replicas (their own pools) claim at once: every turn once, a thread's in order."""
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(
                open_store(database.url, connect_args=database.connect_args, pool_size=2)
            )
            for _ in range(4)
        ]
        for n in range(30):
            assert await stores[0].turns.record(turn(f"ev{n}", thread(n % 6)))
        claimed: list[Turn] = []

        async def worker(store: SqlStore, name: str) -> None:
            while len(claimed) < 30:
                got = await store.turns.claim(name, ["slack"], LEASE)
                if got is None:  # the rest are taken, or wait behind a running turn
                    await asyncio.sleep(0.005)  # polling the ledger
                    continue
                claimed.append(got)
                assert await store.turns.complete(got.turn_id, name, Reply("ok"), latency_ms=1)
                await store.turns.finish(got.turn_id, name, TurnStatus.DELIVERED)

        async with asyncio.timeout(60):
            await asyncio.gather(*(worker(s, f"w{i}") for i, s in enumerate(stores)))
    keys = [t.event_key for t in claimed]
    assert sorted(keys) == sorted(f"ev{n}" for n in range(30)) and len(set(keys)) == 30
    for n in range(6):  # each thread's turns ran in the order they were recorded
        in_thread = [int(k[2:]) for k in keys if int(k[2:]) % 6 == n]
        assert in_thread == sorted(in_thread)


async def test_claim_some_takes_at_most_its_limit_and_leaves_the_rest(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    store, clock = clock_store
    for key, n in (("a1", 1), ("a2", 1), ("b1", 2), ("c1", 3)):
        clock.tick(seconds=1)
        assert await store.turns.record(turn(key, thread(n)))
    for owner, expected in (("w1", ["a1"]), ("w2", ["b1"])):
        taken = await store.turns.claim_some(owner, ["slack"], LEASE, 1)
        assert [t.event_key for t in taken] == expected
    untouched = await store.turns.get("c1")
    assert untouched is not None and untouched.lease_owner is None  # not taken beyond the limit
    [rest] = await store.turns.claim_some("w3", ["slack"], LEASE, 5)
    assert rest.event_key == "c1" and rest.lease_owner == "w3"


async def test_a_member_over_their_rate_waits_for_a_token_shared_by_every_replica(
    database: Database,
) -> None:
    clock = Clock()
    rate = Rate(per_second=10 / 60, burst=2)  # ten a minute, two at once
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                open_store(database.url, connect_args=database.connect_args, now=clock)
            )
            for _ in range(2)
        ]

        async def record(store: SqlStore, key: str) -> Recorded:
            return await store.turns.record_in_thread(turn(key), thread(), rate=rate)

        assert await record(a, "ev1") == Recorded(written=True)
        assert await record(b, "ev2") == Recorded(written=True)  # the burst, across replicas
        over = await record(a, "ev3")
        assert not over.written and over.wait == pytest.approx(6.0)
        assert await b.turns.get("ev3") is None  # nothing recorded, so nothing runs or bills
        assert await record(b, "ev1") == Recorded(written=False)  # a redelivery is not counted
        clock.tick(seconds=3)
        assert (await record(b, "ev3")).wait == pytest.approx(3.0)
        clock.tick(seconds=3)
        assert await record(b, "ev3") == Recorded(written=True)
        other = dataclasses.replace(turn("ev4", thread(2)), user_key="slack:T1:U9")
        assert await a.turns.record_in_thread(other, thread(2), rate=rate) == Recorded(
            written=True
        )  # each member has their own allowance


async def test_waiting_turns_say_what_they_wait_for_and_their_note_is_kept_only_while_waiting(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    store, clock = clock_store
    for key, n in (("a1", 1), ("a2", 1), ("b1", 2)):
        clock.tick(seconds=1)
        assert await store.turns.record(turn(key, thread(n)))
    waiting = await store.turns.waiting(["slack"], 10)
    assert [(w.turn.event_key, w.behind, w.in_order) for w in waiting] == [
        ("a1", False, True),
        ("a2", True, False),  # behind a1 in its own thread, which shows nothing yet
        ("b1", False, True),
    ]
    assert await store.turns.waiting(["discord"], 10) == []
    a1, a2 = waiting[0].turn, waiting[1].turn
    assert await store.turns.save_posted_while_waiting(a1.turn_id, "shown") is True
    assert [w.in_order for w in await store.turns.waiting(["slack"], 10)] == [True, True, True]
    running = await store.turns.claim("w", ["slack"], LEASE)
    assert running is not None and running.turn_id == a1.turn_id and running.posted == "shown"
    assert await store.turns.save_posted_while_waiting(a1.turn_id, "late") is False
    assert [w.turn.event_key for w in await store.turns.waiting(["slack"], 10)] == ["a2", "b1"]
    assert await store.turns.save_posted_while_waiting(a2.turn_id, "shown too") is True


async def test_replicas_recording_one_thread_at_once_number_its_turns_in_order(
    database: Database,
) -> None:
    """Two replicas record turns of the same thread at the same moment: each is written once,
    and the thread's numbers (its order) have no gap and no twin."""
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(
                open_store(database.url, connect_args=database.connect_args, pool_size=4)
            )
            for _ in range(2)
        ]
        written = await asyncio.gather(
            *(stores[n % 2].turns.record(turn(f"ev{n}", thread(1))) for n in range(24))
        )
        assert all(written)
        async with stores[0].engine.connect() as conn:
            result = await conn.execute(text("SELECT seq FROM turns ORDER BY seq"))
            assert [row.seq for row in result] == list(range(1, 25))


@pytest.mark.parametrize("rate", [None, Rate(per_second=100, burst=100)], ids=["free", "rated"])
async def test_replicas_recording_one_quiet_thread_at_once_lease_only_its_first_turn(
    database: Database, rate: Rate | None
) -> None:
    """Two replicas record turns of one quiet thread at the same moment, each offering to run
    it at once: only the thread's first turn is leased (to its recorder), the others wait for
    it, so the thread still runs one turn at a time, in order."""
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(
                open_store(database.url, connect_args=database.connect_args, pool_size=4)
            )
            for _ in range(2)
        ]
        takes = [Take(f"replica-{n}", LEASE) for n in range(2)]
        recorded = await asyncio.gather(
            *(
                stores[n % 2].turns.record_in_thread(
                    turn(f"ev{n}", thread(1)), thread(1), rate=rate, take=takes[n % 2]
                )
                for n in range(16)
            )
        )
        assert all(made.written for made in recorded)
        [taken] = [made.taken for made in recorded if made.taken is not None]
        async with stores[0].engine.connect() as conn:
            result = await conn.execute(text("SELECT * FROM turns ORDER BY seq"))
            rows = list(result)
        assert [row.seq for row in rows] == list(range(1, 17))
        first, *rest = rows
        assert (first.turn_id, first.status, first.runs) == (taken.turn_id, "running", 1)
        assert first.lease_owner == taken.lease_owner in ("replica-0", "replica-1")
        assert taken.lease_expires_at is not None and taken.request is not None
        assert all((row.status, row.lease_owner, row.runs) == ("received", None, 0) for row in rest)
        # Nothing to claim until the first is done: its thread is busy.
        assert await stores[1].turns.claim_some("w", ["slack"], LEASE, 9) == []


async def test_a_turn_taken_at_record_is_not_claimed_by_another_worker(
    clock_store: tuple[SqlStore, Clock],
) -> None:
    store, clock = clock_store
    take = Take("recorder", LEASE)
    quiet = await store.turns.record_in_thread(turn("a", thread(1)), thread(1), take=take)
    assert quiet.taken is not None and quiet.taken.lease_expires_at == T0 + LEASE
    assert quiet.taken.status is TurnStatus.RUNNING and quiet.taken.runs == 1
    # A turn refused at intake is written completed: nothing to run, nothing to take.
    refused = dataclasses.replace(turn("b", thread(2)), error=RateLimited(3.0))
    assert (await store.turns.record_in_thread(refused, thread(2), take=take)).taken is None
    [b] = await store.turns.claim_some("w", ["slack"], LEASE, 9)
    assert b.event_key == "b"
    await store.turns.finish(b.turn_id, "w", TurnStatus.DELIVERED)
    clock.tick(seconds=LEASE.total_seconds() + 1)  # the recorder died: its lease runs out
    [again] = await store.turns.claim_some("w", ["slack"], LEASE, 9)
    assert again.event_key == "a" and again.runs == 2


async def test_migrating_the_old_ledger_keeps_its_turns(database: Database) -> None:
    from alembic import command

    from storage.engine import alembic_config

    engine = create_engine(database.url, connect_args=database.connect_args)
    try:
        async with engine.begin() as conn:

            def to_0001(sync: object) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync
                command.upgrade(config, "0001")

            await conn.run_sync(to_0001)
            for key, status in (("done", "done"), ("stuck", "pending"), ("bad", "failed")):
                await conn.execute(
                    text(
                        "INSERT INTO turns (turn_id, event_key, platform, thread_key, user_key,"
                        " kind, status, created_at, error) VALUES (:k, :k, 'slack', 't', 'u',"
                        " 'ask', :s, :c, 'Boom')"
                    ),
                    {"k": key, "s": status, "c": T0},
                )
    finally:
        await engine.dispose()
    async with open_store(database.url, connect_args=database.connect_args) as store:
        done, stuck, bad = [await store.turns.get(k) for k in ("done", "stuck", "bad")]
        assert done is not None and done.status is TurnStatus.DELIVERED
        assert stuck is not None and stuck.status is TurnStatus.FAILED and stuck.error is None
        assert bad is not None and bad.status is TurnStatus.FAILED
        assert await store.turns.claim("w", ["slack"], LEASE) is None  # nothing to resume


@needs_postgres
async def test_a_hundred_turns_in_flight_stay_within_the_pool(pg_database: Database) -> None:
    """Nothing holds a connection while Samsar works: one replica with 100 turns waiting on
    Samsar has no more PostgreSQL connections open than its pool allows."""
    name = f"budget-{uuid.uuid4().hex[:8]}"
    settings = {**pg_database.connect_args["server_settings"], "application_name": name}
    args = {"server_settings": settings}
    samsar = FakeSamsar(start_credits=10)
    samsar.gate = asyncio.Event()
    async with open_store(pg_database.url, connect_args=args, pool_size=5) as store:
        config = WorkerConfig(max_running=128)
        plain = ConversationService(samsar, store, ConversationConfig(), worker=config)
        async with driving(plain) as bot:
            users = [ChatUser("slack", f"U{n}", workspace_id="T1") for n in range(100)]
            asks = [
                asyncio.create_task(bot.ask(IncomingMessage(f"e{n}", user, thread(n), "hi")))
                for n, user in enumerate(users)
            ]
            async with asyncio.timeout(60):
                await samsar.wait_for_completions(100)  # all hundred are waiting on Samsar
            async with pg_connections(pg_database) as count:
                held = await count(name)
            samsar.gate.set()
            replies = await asyncio.gather(*asks)
    assert 1 <= held <= 5
    assert all(r is not None for r in replies)


@contextlib.asynccontextmanager
async def pg_connections(database: Database) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """Counts the server's connections of one application name."""
    engine = create_engine(database.url, pool_size=1, max_overflow=0)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")

    async def count(name: str) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(query, {"name": name})).scalar_one())

    try:
        yield count
    finally:
        await engine.dispose()


async def test_a_picture_of_many_megabytes_is_kept_byte_for_byte(store: SqlStore) -> None:
    assert await store.turns.record(turn("big"))
    claimed = await store.turns.claim("w", ["slack"], LEASE)
    assert claimed is not None
    pictures = tuple(
        ReplyImage(random.randbytes(size), "image/png", f"{n}.png", None)
        for n, size in enumerate((3 * 1024 * 1024 + 17, 1024 * 1024, 5))
    )
    assert await store.turns.complete(claimed.turn_id, "w", Reply("look", pictures), latency_ms=1)
    await store.turns.release(claimed.turn_id, "w")
    again = await store.turns.claim("w", ["slack"], LEASE)
    assert again is not None and again.reply is not None
    assert again.reply.images == pictures


async def test_a_reply_moves_its_session_with_the_outcome_unless_the_thread_moved_on(
    store: SqlStore,
) -> None:
    await store.sessions.save(ThreadSession(thread(1), "sess-1", ALICE.key, "Alice"))
    await store.sessions.save(ThreadSession(thread(2), "sess-new", ALICE.key, "Alice"))
    for made in (turn("a", thread(1)), turn("b", thread(2))):
        assert await store.turns.record(made)
    a, b = await store.turns.claim_some("w", ["slack"], LEASE, 9)
    moved = SessionAdvance(thread(1), "sess-1", "resp-1", "fp-1")
    assert await store.turns.complete(a.turn_id, "w", Reply("hi", advance=moved), latency_ms=1)
    stale = SessionAdvance(thread(2), "sess-old", "resp-2", "fp-2")  # reset meanwhile
    assert await store.turns.complete(b.turn_id, "w", Reply("hi", advance=stale), latency_ms=1)
    one, two = await store.sessions.get(thread(1)), await store.sessions.get(thread(2))
    assert one is not None and (one.last_response_id, one.prompt_fingerprint) == ("resp-1", "fp-1")
    assert two is not None and (two.last_response_id, two.prompt_fingerprint) == (None, None)
    for done in (a, b):
        stored = await store.turns.load(done.turn_id)
        assert stored is not None and stored.status is TurnStatus.COMPLETED


async def test_a_body_that_cannot_be_fixed_at_claim_leaves_the_claim_standing(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    await store.sessions.save(ThreadSession(thread(1), "sess-1", ALICE.key, "Alice"))
    assert await store.turns.record(turn("a", thread(1)))

    def broken(claimed: Turn, session: ThreadSession, in_force: PromptsInForce) -> SamsarCall:
        raise RuntimeError("cannot make a body")

    with caplog.at_level(logging.WARNING, logger="storage.turns"):
        [claimed] = await store.turns.claim_some("w", ["slack"], LEASE, 9, fix=broken)
    assert claimed.event_key == "a" and claimed.call is None  # the run fixes it (or fails)
    assert "completion body not fixed at claim" in caplog.text
    stored = await store.turns.load(claimed.turn_id)
    assert stored is not None and stored.lease_owner == "w" and stored.status is TurnStatus.RUNNING

"""The turn worker on fakes: delivery retries and their end, patience with a slow Samsar,
retention, and a ledger that fails for a moment."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from core import errors
from core.conversation.service import ConversationConfig, ConversationService
from core.models import (
    ChatUser,
    IncomingMessage,
    Recorded,
    Reply,
    ThreadRef,
    Turn,
    TurnKind,
    TurnRequest,
    TurnStatus,
)
from core.turns.executor import Patience
from core.turns.worker import WorkerConfig
from tests.fakes import FakeSamsar, MemoryStore
from tests.turns import driving

ALICE = ChatUser("slack", "U1", workspace_id="T1", display_name="Alice")
THREAD = ThreadRef("slack", "T1", "C1", "1.0")
QUICK = WorkerConfig(poll=0.05, delivery_wait=0.01, delivery_max_wait=0.02, delivery_tries=4)


def message(text: str, key: str) -> IncomingMessage:
    return IncomingMessage(key, ALICE, THREAD, text)


def service(samsar: FakeSamsar, store: MemoryStore, **config: object) -> ConversationService:
    return ConversationService(samsar, store, ConversationConfig(**config), worker=QUICK)  # type: ignore[arg-type]


async def test_a_post_that_fails_twice_is_delivered_on_the_third_try() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    async with driving(service(samsar, store)) as bot:
        bot.channel.fail_deliveries = 2
        reply = await bot.ask(message("hello", "e1"))
        assert reply is not None and reply.text == "echo: hello"
    turn = await store.turns.get("e1")
    assert turn is not None and turn.status is TurnStatus.DELIVERED
    assert turn.delivery_attempts == 2 and turn.runs == 1
    assert samsar.count("completion") == 1  # delivering again never runs the turn again


async def test_samsar_is_called_while_the_placeholder_is_written_and_the_outcome_after_it() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    store.turns.posted_gate = asyncio.Event()  # the placeholder's write held back
    async with driving(service(samsar, store)) as bot:
        turn = await bot.submit(message("hello", "e1"))
        assert turn is not None
        async with asyncio.timeout(5):
            await samsar.wait_for_completions(1)  # called though the write has not landed
            await asyncio.sleep(0)  # the worker's next steps, were it not waiting
            assert store.turns.writes == []  # the outcome waits for the placeholder
            store.turns.posted_gate.set()
            outcome = await bot.channel.expect(turn.turn_id)
    assert isinstance(outcome, Reply) and outcome.text == "echo: hello"
    assert store.turns.writes == ["posted", "complete"]
    stored = await store.turns.get("e1")
    assert stored is not None and stored.posted == "working"


async def test_deliveries_that_keep_failing_end_in_a_note_and_a_failed_turn() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    async with driving(service(samsar, store)) as bot:
        bot.channel.fail_deliveries = 100
        turn = await bot.submit(message("hello", "e1"))
        assert turn is not None
        async with asyncio.timeout(5):
            while not bot.channel.deliveries:  # noqa: ASYNC110 (polling under the deadline)
                await asyncio.sleep(0.01)
    assert bot.channel.deliveries == [f"gave up on {turn.turn_id}"]
    stored = await store.turns.get("e1")
    assert stored is not None and stored.status is TurnStatus.FAILED
    assert stored.delivery_attempts == QUICK.delivery_tries - 1
    assert samsar.count("completion") == 1


async def test_undeliverable_stops_at_once() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    async with driving(service(samsar, store)) as bot:
        original = bot.channel.deliver

        async def refuse(*args: object, **kwargs: object) -> None:
            raise errors.Undeliverable("channel_not_found")

        bot.channel.deliver = refuse  # type: ignore[method-assign]
        turn = await bot.submit(message("hello", "e1"))
        assert turn is not None
        async with asyncio.timeout(5):
            while not bot.channel.deliveries:  # noqa: ASYNC110 (polling under the deadline)
                await asyncio.sleep(0.01)
        bot.channel.deliver = original  # type: ignore[method-assign]
    stored = await store.turns.get("e1")
    assert stored is not None and stored.status is TurnStatus.FAILED
    assert stored.delivery_attempts == 0


async def test_a_completion_slower_than_the_timeout_is_asked_again_with_its_key() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    patient = Patience(total=5, first_wait=0.01, max_wait=0.02)
    async with driving(service(samsar, store, patience=patient)) as bot:
        samsar.fail_completions.extend([errors.SamsarTimeout("slow"), errors.SamsarTimeout("slow")])
        reply = await bot.ask(message("take your time", "e1"))
    assert isinstance(reply, Reply) and reply.text == "echo: take your time"
    keys = [c.idempotency_key for c in samsar.calls if c.route == "completion"]
    assert len(keys) == 3 and len(set(keys)) == 1
    turn = await store.turns.get("e1")
    assert turn is not None and bot.channel.slow == [turn.turn_id]  # told once, not twice
    assert samsar.balances["slack:T1:U1"] == 99


async def test_patience_runs_out_into_a_clear_timeout() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    impatient = Patience(total=0.0, first_wait=0.01)
    async with driving(service(samsar, store, patience=impatient)) as bot:
        samsar.fail_completions.append(errors.SamsarTimeout("slow"))
        try:
            await bot.ask(message("hello", "e1"))
        except errors.SamsarTimeout:
            pass
        else:
            raise AssertionError("the timeout should reach the member")
    turn = await store.turns.get("e1")
    assert turn is not None and turn.status is TurnStatus.FAILED


async def test_old_finished_turns_are_pruned_and_open_ones_kept() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    clock = [store.turns.now()]
    store.turns.now = lambda: clock[0]
    async with driving(service(samsar, store)) as bot:
        await bot.ask(message("old", "e1"))
    clock[0] += timedelta(days=31)
    pruning = ConversationService(
        samsar,
        store,
        ConversationConfig(),
        worker=WorkerConfig(poll=0.05, retention=timedelta(days=30)),
    )
    pruning.worker._now = lambda: clock[0]  # the worker's clock, moved with the ledger's
    async with driving(pruning) as bot:
        samsar.gate = asyncio.Event()  # keep the next turn open while pruning runs
        turn = await bot.submit(message("new", "e2"))
        async with asyncio.timeout(5):
            while await store.turns.get("e1") is not None:  # noqa: ASYNC110 (polling)
                await asyncio.sleep(0.01)
        assert turn is not None and await store.turns.load(turn.turn_id) is not None
        samsar.gate.set()


async def test_a_ledger_that_fails_for_a_moment_does_not_stop_the_worker() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    real_claim = store.turns.claim
    failures = [RuntimeError("database is down")] * 3

    async def flaky_claim(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    real_record = store.turns.record_in_thread

    async def left_to_a_claim(*args: Any, **kwargs: Any) -> Recorded:
        kwargs.pop("take")  # as a turn another replica recorded: only a claim starts it
        return await real_record(*args, **kwargs)

    store.turns.claim = flaky_claim  # type: ignore[method-assign]
    store.turns.record_in_thread = left_to_a_claim  # type: ignore[method-assign]
    async with driving(service(samsar, store)) as bot:
        reply = await bot.ask(message("still there?", "e1"))
    assert reply is not None and failures == []


async def test_turns_that_wait_are_told_their_place_in_line_until_they_start() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    samsar.gate = asyncio.Event()  # Samsar holds the first turn
    config = WorkerConfig(poll=0.05, max_running=1, line_every=0.01)
    other = ThreadRef("slack", "T1", "C1", "2.0")
    bob = ChatUser("slack", "U2", workspace_id="T1", display_name="Bob")
    bob_asks = IncomingMessage("b1", bob, other, "mine")
    svc = ConversationService(samsar, store, ConversationConfig(), worker=config)
    async with driving(svc) as bot:
        first = await bot.submit(message("first", "a1"))
        async with asyncio.timeout(5):
            await samsar.wait_for_completions(1)
        behind = await bot.submit(message("second", "a2"))  # its thread's first is running
        in_line = await bot.submit(bob_asks)  # the one worker place is taken
        assert first is not None and behind is not None and in_line is not None
        async with asyncio.timeout(5):
            while len(bot.channel.waits) < 2:  # noqa: ASYNC110 (polling under the deadline)
                await asyncio.sleep(0.01)
        assert sorted(bot.channel.waits, key=str) == sorted(
            [(behind.turn_id, None), (in_line.turn_id, 1)], key=str
        )
        samsar.gate.set()
        async with asyncio.timeout(5):
            while len(bot.channel.deliveries) < 3:  # noqa: ASYNC110 (polling under the deadline)
                await asyncio.sleep(0.01)
    # Nothing was shown for the turn that never waited, nor again once they started.
    assert first.turn_id not in {turn_id for turn_id, _ in bot.channel.waits}
    assert len(bot.channel.waits) == 2 and bot.channel.deliveries[0] == first.turn_id


async def test_a_turn_recorded_here_runs_unclaimed_and_one_taken_while_stopping_is_given_back() -> (
    None
):
    samsar, store = FakeSamsar(), MemoryStore()
    claimed: list[str] = []
    real_claim = store.turns.claim

    async def noted(owner: str, platforms: Collection[str], lease: timedelta) -> Turn | None:
        turn = await real_claim(owner, platforms, lease)
        if turn is not None:
            claimed.append(turn.event_key)
        return turn

    store.turns.claim = noted  # type: ignore[method-assign]
    bot_service = service(samsar, store)
    async with driving(bot_service) as bot:
        reply = await bot.ask(message("quick", "e1"))
        assert reply is not None and reply.text == "echo: quick"
        assert claimed == []  # leased to this worker as it was recorded
        worker = bot_service.worker
        take = worker.reserve("slack")
        assert take is not None and worker.reserve("elsewhere") is None  # no channel for it
        await worker.drain(0)  # the process stops while a record is under way
        second = message("late", "e2")
        request = TurnRequest(second.user, second.thread, second.text, TurnKind.ASK)
        turn = Turn("t2", "e2", "slack", THREAD.key, ALICE.key, "ask", request=request)
        recorded = await store.turns.record_in_thread(turn, THREAD, take=take)
        assert recorded.taken is not None
        worker.taken(recorded.taken)
        async with asyncio.timeout(5):
            while (row := await store.turns.load("t2")) is None or row.lease_owner:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert row.status is TurnStatus.RUNNING and worker.running == 0

"""KeyedLocks: FIFO by the order of `hold()` calls, cancellation-safe, idle keys forgotten."""

from __future__ import annotations

import asyncio

import pytest

from core.conversation.locks import KeyedLocks, Place


async def test_turns_follow_the_order_of_the_hold_calls() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def turn(name: str, delay_before_entering: int) -> None:
        place = locks.hold("k")  # the place is taken here, before any await
        for _ in range(delay_before_entering):
            await asyncio.sleep(0)  # e.g. acknowledging an interaction first
        async with place:
            order.append(f"{name} in")
            await asyncio.sleep(0)
            order.append(f"{name} out")

    first = turn("a", delay_before_entering=5)
    second = turn("b", delay_before_entering=0)
    # Both coroutines take their places when their tasks start, a before b.
    await asyncio.gather(asyncio.ensure_future(first), asyncio.ensure_future(second))
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(locks) == 0


async def test_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    held = locks.hold("a")
    async with held:
        async with asyncio.timeout(1):
            async with locks.hold("b"):
                pass


async def test_a_cancelled_waiter_lets_the_next_one_through() -> None:
    locks = KeyedLocks()
    first = locks.hold("k")
    await first.__aenter__()
    waiting = asyncio.create_task(_enter_and_leave(locks.hold("k")))
    third = locks.hold("k")
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await first.__aexit__(None, None, None)
    async with asyncio.timeout(1):
        async with third:
            pass
    assert len(locks) == 0


async def test_an_abandoned_place_is_skipped() -> None:
    locks = KeyedLocks()
    first = locks.hold("k")
    never = locks.hold("k")
    last = locks.hold("k")
    async with first:
        never.abandon()
        never.abandon()  # twice is harmless
    async with asyncio.timeout(1):
        async with last:
            pass
    assert len(locks) == 0


async def _enter_and_leave(place: Place) -> None:
    async with place:
        pass

"""A click on an earlier turn (regenerate, HD, another size, edit, try again) is a new turn of
the same member in the same conversation; an out-of-credits answer carries a checkout link."""

from __future__ import annotations

import asyncio

import pytest

from core import errors
from core.conversation.service import ConversationConfig, ConversationService
from core.models import ChatUser, ImageChoice, IncomingMessage, Redo, Reply, ThreadRef, TurnKind
from core.turns.worker import WorkerConfig
from tests.fakes import FakeSamsar, MemoryStore
from tests.turns import TurnDriver, driving

ALICE = ChatUser("discord", "1", display_name="Alice")
BOB = ChatUser("discord", "2", display_name="Bob")
THREAD = ThreadRef("discord", "G1", "C1", "T1")
QUICK = WorkerConfig(poll=0.05, delivery_wait=0.01, delivery_max_wait=0.02)


def service(samsar: FakeSamsar, store: MemoryStore, **config: object) -> ConversationService:
    return ConversationService(samsar, store, ConversationConfig(**config), worker=QUICK)  # type: ignore[arg-type]


async def outcome(bot: TurnDriver, turn_id: str) -> Reply | errors.BotError:
    return await asyncio.wait_for(bot.channel.expect(turn_id), timeout=10)


async def drawn(bot: TurnDriver, key: str = "e1") -> str:
    """Alice's picture of a red fox at 1024x1024, low quality; its turn id."""
    message = IncomingMessage(key, ALICE, THREAD, "a red fox")
    turn = await bot.submit(message, TurnKind.IMAGINE, ImageChoice(size="1024x1024", quality="low"))
    assert turn is not None
    assert isinstance(await outcome(bot, turn.turn_id), Reply)
    return turn.turn_id


@pytest.mark.parametrize(
    ("redo", "extra", "text", "size", "quality", "action"),
    [
        (Redo.REGENERATE, {}, "a red fox", "1024x1024", "low", None),
        (Redo.HD, {}, "a red fox", "1024x1024", "high", None),
        (Redo.SIZE, {"size": "1536x1024"}, "a red fox", "1536x1024", "low", None),
        (Redo.EDIT, {"instruction": "make it night"}, "make it night", "1024x1024", "low", "edit"),
    ],
)
async def test_a_click_draws_again_as_asked_in_the_same_session(
    redo: Redo, extra: dict[str, str], text: str, size: str, quality: str, action: str | None
) -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    async with driving(service(samsar, store)) as bot:
        first = await drawn(bot)
        turn = await bot.service.again("click-1", ALICE, first, redo, **extra)  # type: ignore[arg-type]
        assert turn is not None and turn.request is not None
        reply = await outcome(bot, turn.turn_id)
        assert isinstance(reply, Reply) and reply.images
        again = await bot.service.again("click-1", ALICE, first, redo, **extra)  # type: ignore[arg-type]
        assert again is None  # the platform delivered the click twice: one turn
    [one, two] = [c.request for c in samsar.calls if c.route == "completion"]
    assert one is not None and two is not None
    assert two.session_id == one.session_id and two.force_image
    assert two.text.endswith(text)
    tool = two.image_tool
    assert tool is not None and (tool.size, tool.quality, tool.action) == (size, quality, action)


async def test_someone_elses_click_is_refused_and_nothing_runs() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    async with driving(service(samsar, store)) as bot:
        first = await drawn(bot)
        with pytest.raises(errors.NotThreadOwner):
            await bot.service.again("click-1", BOB, first, Redo.REGENERATE)
        with pytest.raises(errors.InputRejected) as gone:
            await bot.service.again("click-2", ALICE, "no-such-turn", Redo.REGENERATE)
        assert gone.value.reason == errors.InputRejected.GONE
    assert samsar.count("completion") == 1


async def test_try_again_asks_with_the_failed_turns_key_and_is_charged_once() -> None:
    samsar, store = FakeSamsar(), MemoryStore()
    async with driving(service(samsar, store)) as bot:
        samsar.fail_completions = [errors.SamsarUnreachable("down")]
        message = IncomingMessage("e1", ALICE, THREAD, "hello")
        failed = await bot.submit(message)
        assert failed is not None
        assert isinstance(await outcome(bot, failed.turn_id), errors.SamsarUnreachable)
        retry = await bot.service.again("click-1", ALICE, failed.turn_id, Redo.RETRY)
        assert retry is not None
        reply = await outcome(bot, retry.turn_id)
        assert isinstance(reply, Reply) and reply.text == "echo: hello"
        # A second retry of the same failure (another click) replays the same answer.
        other = await bot.service.again("click-2", ALICE, failed.turn_id, Redo.RETRY)
        assert other is not None and isinstance(await outcome(bot, other.turn_id), Reply)
    keys = [c.idempotency_key for c in samsar.calls if c.route == "completion"]
    assert len(set(keys)) == 1 and len(keys) == 3
    assert samsar.balances[next(iter(samsar.balances))] == 100 - 1


async def test_out_of_credits_comes_with_a_checkout_link_once() -> None:
    samsar, store = FakeSamsar(start_credits=0), MemoryStore()
    async with driving(service(samsar, store, buy_credits=250)) as bot:
        turn = await bot.submit(IncomingMessage("e1", ALICE, THREAD, "hello"))
        assert turn is not None
        error = await outcome(bot, turn.turn_id)
    assert isinstance(error, errors.InsufficientCredits)
    assert error.checkout_url == "https://checkout.invalid/250"
    stored = await store.turns.get("e1")
    assert stored is not None and isinstance(stored.error, errors.InsufficientCredits)
    assert stored.error.checkout_url == "https://checkout.invalid/250"  # kept for redelivery
    assert samsar.count("recharge") == 1

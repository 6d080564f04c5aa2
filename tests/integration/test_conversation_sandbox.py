"""Core + storage + the real Samsar client against the sandbox over real HTTP.

Runs on SQLite always and on PostgreSQL when TEST_DATABASE_URL is set (the `database` fixture).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from PIL import Image

from core import errors
from core.conversation.service import ConversationConfig, ConversationService
from core.models import ChatUser, ImageChoice, IncomingMessage, PromptScope, ThreadRef
from core.samsar.client import SamsarClient
from core.samsar.retry import RetryPolicy
from sandbox.app import RunningSandbox, running_sandbox
from sandbox.state import SandboxConfig
from storage.store import SqlStore, open_store
from tests.integration.conftest import Database, needs_postgres
from tests.turns import RecordingChannel, TurnDriver, driving

ALICE = ChatUser("discord", "1001", workspace_id="G1", display_name="Alice")
BOB = ChatUser("discord", "1002", workspace_id="G1", display_name="Bob")
ADMIN = ChatUser("discord", "1009", workspace_id="G1", display_name="Ada", is_admin=True)


def thread(n: int = 1) -> ThreadRef:
    return ThreadRef("discord", "G1", "C1", f"T{n}")


def msg(
    text: str, key: str, *, user: ChatUser = ALICE, where: ThreadRef | None = None
) -> IncomingMessage:
    return IncomingMessage(event_key=key, user=user, thread=where or thread(), text=text)


@dataclass
class Stack:
    service: TurnDriver
    sandbox: RunningSandbox
    store: SqlStore

    def completions(self) -> int:
        return len(
            [c for c in self.sandbox.state.calls_to("assistant/completion") if c.status == 200]
        )

    def balance(self, user: ChatUser) -> int:
        return self.sandbox.state.balance(user.platform, user.key)


@pytest.fixture
async def stack(database: Database) -> AsyncIterator[Stack]:
    config = SandboxConfig(start_credits=1000)
    async with (
        running_sandbox(config) as sandbox,
        open_store(database.url, connect_args=database.connect_args) as store,
        SamsarClient(
            sandbox.api_key,
            sandbox.base_url,
            timeout=5,
            completion_timeout=5,
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
        ) as client,
    ):
        service = ConversationService(client, store, ConversationConfig())
        async with driving(service) as driver:
            yield Stack(driver, sandbox, store)


async def test_a_thread_is_one_session_bootstrapped_once(stack: Stack) -> None:
    first = await stack.service.ask(msg("hello", "e1"))
    second = await stack.service.ask(msg("and again", "e2"))
    other = await stack.service.ask(msg("elsewhere", "e3", where=thread(2)))
    assert first is not None and second is not None and other is not None
    assert second.session_id == first.session_id
    assert other.session_id != first.session_id
    state = stack.sandbox.state
    assert len(state.calls_to("external_users/session")) == 1
    assert len(state.calls_to("utils/assistant_session")) == 2
    session = state.session(first.session_id or "")
    assert session is not None and session.owner == ("discord", "discord:1001")
    assert [e.text for e in session.history if e.role == "user"] == ["hello", "and again"]
    assert first.credits.charged == 1 and second.credits.remaining == 998


async def test_imagine_returns_a_decodable_png_of_the_asked_size(stack: Stack) -> None:
    reply = await stack.service.imagine(
        msg("a red fox", "e1"), ImageChoice(size="640x480", quality="low")
    )
    assert reply is not None and len(reply.images) == 1
    image = reply.images[0]
    assert image.mime == "image/png" and image.filename.endswith(".png")
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.format == "PNG" and decoded.size == (640, 480)
    assert image.revised_prompt


async def test_non_owner_gets_the_hint_and_is_not_billed(stack: Stack) -> None:
    await stack.service.ask(msg("mine", "e1"))
    with pytest.raises(errors.NotThreadOwner):
        await stack.service.ask(msg("let me in", "e2", user=BOB))
    assert stack.completions() == 1
    assert stack.sandbox.state.user("discord", BOB.key) is None


async def test_admin_prompt_reaches_the_session_once(stack: Stack) -> None:
    await stack.service.admin.prompt_set(ADMIN, thread(), PromptScope.CHANNEL, "Answer in haiku.")
    first = await stack.service.ask(msg("one", "e1"))
    await stack.service.ask(msg("two", "e2"))
    assert first is not None
    session = stack.sandbox.state.session(first.session_id or "")
    assert session is not None
    developer = [e.text for e in session.history if e.role == "developer"]
    assert len(developer) == 1 and "Answer in haiku." in developer[0]
    audit = await stack.store.audit.recent()
    assert [entry.action for entry in audit] == ["prompt.set"]


async def test_out_of_credits_is_the_typed_error_and_charges_nothing(stack: Stack) -> None:
    await stack.service.ask(msg("hi", "e1"))
    stack.sandbox.state.set_credits("discord", ALICE.key, 0)
    with pytest.raises(errors.InsufficientCredits):
        await stack.service.ask(msg("more", "e2"))
    assert stack.balance(ALICE) == 0


async def test_one_event_twice_at_once_is_one_completion_and_one_charge(stack: Stack) -> None:
    results = await asyncio.gather(
        stack.service.ask(msg("same", "dup")), stack.service.ask(msg("same", "dup"))
    )
    assert sorted(r is None for r in results) == [False, True]
    assert stack.completions() == 1
    assert stack.sandbox.state.charged_total("discord", ALICE.key) == 1


async def test_a_retried_completion_reuses_its_key_and_charges_once(stack: Stack) -> None:
    await stack.service.ask(msg("warm up", "e0"))
    # The first attempt fails with 503; the retry carries the same key and is charged once.
    stack.sandbox.state.inject("assistant/completion", status=503)
    reply = await stack.service.ask(msg("flaky", "e1"))
    assert reply is not None
    calls = stack.sandbox.state.calls_to("assistant/completion")[1:]
    assert [c.status for c in calls] == [503, 200]
    assert calls[0].idempotency_key == calls[1].idempotency_key == f"turn-{reply.turn_id}"
    assert stack.sandbox.state.charged_total("discord", ALICE.key) == 2


async def test_fifty_threads_in_parallel_all_complete(stack: Stack) -> None:
    users = [ChatUser("discord", str(2000 + i), workspace_id="G1") for i in range(50)]
    replies = await asyncio.gather(
        *(
            stack.service.ask(msg(f"q{i}", f"k{i}", user=user, where=thread(100 + i)))
            for i, user in enumerate(users)
        )
    )
    assert all(r is not None and r.text for r in replies)
    assert len({r.session_id for r in replies if r is not None}) == 50
    assert stack.completions() == 50


async def test_two_messages_in_one_thread_keep_their_order(stack: Stack) -> None:
    stack.sandbox.state.inject("assistant/completion", delay=0.3)  # the first one is slow
    first, second = await asyncio.gather(
        stack.service.ask(msg("first", "o1")), stack.service.ask(msg("second", "o2"))
    )
    assert first is not None and second is not None
    session = stack.sandbox.state.session(first.session_id or "")
    assert session is not None
    assert [e.text for e in session.history if e.role == "user"] == ["first", "second"]
    assert first.text.startswith("Sandbox reply #1") and second.text.startswith("Sandbox reply #2")


async def test_samsar_down_is_an_upstream_error_after_retries(stack: Stack) -> None:
    await stack.service.ask(msg("warm up", "e0"))
    stack.sandbox.state.inject("assistant/completion", status=503, times=3)
    with pytest.raises(errors.UpstreamError):
        await stack.service.ask(msg("anyone?", "e1"))
    turn = await stack.store.turns.get("e1")
    assert turn is not None and isinstance(turn.error, errors.UpstreamError)


async def test_two_replicas_on_one_database_bill_one_event_once(
    stack: Stack, database: Database
) -> None:
    """A second replica: its own store connection pool and service, the same database."""
    async with (
        open_store(database.url, connect_args=database.connect_args) as other_store,
        SamsarClient(stack.sandbox.api_key, stack.sandbox.base_url) as other_client,
    ):
        other = ConversationService(other_client, other_store, ConversationConfig())
        # The sandbox answers slowly, so both replicas hold the event at the same time.
        stack.sandbox.state.inject("assistant/completion", delay=0.3)
        async with driving(other, channel=stack.service.channel) as replica:
            results = await asyncio.gather(
                stack.service.ask(msg("once", "shared")), replica.ask(msg("once", "shared"))
            )
    assert sorted(r is None for r in results) == [False, True]
    assert stack.completions() == 1
    assert stack.sandbox.state.charged_total("discord", ALICE.key) == 1


@needs_postgres
async def test_replicas_take_turns_in_one_thread_through_postgres(pg_database: Database) -> None:
    """Two replicas record the first two messages of a new thread at once: the ledger lets
    one turn of the thread run at a time, in order, whichever replica runs it, so both land
    in one session instead of racing to create two."""
    channel = RecordingChannel()
    async with (
        running_sandbox() as sandbox,
        open_store(pg_database.url, connect_args=pg_database.connect_args) as store_a,
        open_store(pg_database.url, connect_args=pg_database.connect_args) as store_b,
        SamsarClient(sandbox.api_key, sandbox.base_url) as client,
        driving(ConversationService(client, store_a, ConversationConfig()), channel=channel) as a,
        driving(ConversationService(client, store_b, ConversationConfig()), channel=channel) as b,
    ):
        sandbox.state.inject("assistant/completion", delay=0.3, times=2)
        first, second = await asyncio.gather(a.ask(msg("a", "r1")), b.ask(msg("b", "r2")))
        assert first is not None and second is not None
        assert first.session_id == second.session_id
        assert len(sandbox.state.calls_to("utils/assistant_session")) == 1
        assert sorted(reply.new_session for reply in (first, second)) == [False, True]

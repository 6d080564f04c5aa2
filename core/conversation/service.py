"""The member actions every adapter calls: turns, reset, credits, persona (and admin's)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field

from core import metrics
from core.conversation.admin import AdminActions
from core.conversation.limits import InputLimits, check_image_options, check_text
from core.conversation.locks import KeyedLocks
from core.conversation.members import Members
from core.errors import InputRejected, NotThreadOwner, SlowDown
from core.identity import stable_key
from core.models import (
    Balance,
    ChatUser,
    CheckoutLink,
    ImageChoice,
    ImageOptions,
    LoginLink,
    Rate,
    Recorded,
    Redo,
    SamsarCall,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnKind,
    TurnRequest,
    TurnStatus,
)
from core.ports import SamsarPort, Store
from core.turns.executor import ExecutorConfig, Patience, TurnExecutor
from core.turns.worker import TurnWorker, WorkerConfig

log = logging.getLogger(__name__)

MAX_BUY_CREDITS = 100_000


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    """How the assistant is called and what members may send."""

    image: ImageOptions = field(default_factory=ImageOptions)
    image_tool_on_ask: bool = True
    max_output_tokens: int | None = None
    limits: InputLimits = field(default_factory=InputLimits)
    admin_keys: tuple[str, ...] = ()
    patience: Patience = field(default_factory=Patience)
    member_rate: Rate | None = None  # each member's allowance of turns; None: no limit
    buy_credits: int = 100  # the checkout an out-of-credits answer links to (0: no link)


class ConversationService:
    """The member actions: turns (recorded, then run by the worker), threads, credits, persona."""

    def __init__(
        self,
        samsar: SamsarPort,
        store: Store,
        config: ConversationConfig,
        *,
        worker: WorkerConfig | None = None,
    ) -> None:
        self._samsar = samsar
        self._store = store
        self._config = config
        self._thread_locks = KeyedLocks()
        self._members = Members(samsar, store.users)
        self.admin = AdminActions(samsar, store, self._members, config.admin_keys)
        executor = TurnExecutor(
            samsar,
            store,
            self._members,
            ExecutorConfig(
                limits=config.limits,
                max_output_tokens=config.max_output_tokens,
                patience=config.patience,
                buy_credits=config.buy_credits,
            ),
        )
        self.worker = TurnWorker(store.turns, executor, worker or WorkerConfig())

    # --- turns that reach the assistant ----------------------------------------------

    async def submit(
        self,
        event_key: str,
        request: TurnRequest,
        *,
        route: str = "",
        has_attachments: bool = False,
        choice: ImageChoice | None = None,
    ) -> Turn | None:
        """Record a member action as a turn the worker will run and deliver; None when the
        event was recorded before (a redelivery). Refusals that need no Samsar call (empty,
        too long, bad image options, another member's thread) raise here, recording nothing.

        For an imagine turn, what the member left out of `choice` comes from the operator's
        image settings; an ask turn gets the image tool when the operator allows it.
        """
        check_text(request.text, has_attachments, self._config.limits)
        request = dataclasses.replace(request, image=self._image_tool(request.kind, choice))
        # The place in the thread's line is taken now, before any await: turns of a thread
        # are recorded (so run) in the order this was called.
        async with self._thread_locks.hold(request.thread.key):
            return await self._record(event_key, request, route)

    async def _record(
        self, event_key: str, request: TurnRequest, route: str, *, call: SamsarCall | None = None
    ) -> Turn | None:
        turn = Turn(
            turn_id=uuid.uuid4().hex,
            event_key=event_key,
            platform=request.thread.platform,
            thread_key=request.thread.key,
            user_key=request.user.key,
            kind=request.kind.value,
            request=request,
            route=route,
            call=call,
        )
        take = self.worker.reserve(turn.platform)
        recorded: Recorded | None = None
        try:
            recorded = await self._store.turns.record_in_thread(
                turn, request.thread, rate=self._config.member_rate, fix=self.worker.fix, take=take
            )
        finally:
            if take is not None:
                self.worker.taken(recorded.taken if recorded is not None else None)
        if recorded.owner is not None:
            raise NotThreadOwner(recorded.owner[1])
        if recorded.wait > 0:
            log.info("member over their rate", extra={"user_key": request.user.key})
            raise SlowDown(recorded.wait)
        if not recorded.written:
            metrics.duplicate(request.thread.platform)
            log.info(
                "duplicate event dropped",
                extra={"event_key": event_key, "thread_key": request.thread.key},
            )
            return None
        if recorded.taken is None:
            self.worker.recorded(turn)
        metrics.event(request.thread.platform, request.kind.value)
        return turn

    async def turn(self, turn_id: str) -> Turn | None:
        """A turn by its id (a button names the turn it acts on), or None once pruned."""
        return await self._store.turns.load(turn_id)

    async def first_delivery(self, event_key: str, platform: str) -> bool:
        """Whether this is the first delivery, to this replica or any other, of an event whose
        work records no turn (a greeting, an account command). The event is noted in the
        ledger as done before the work, so a redelivery anywhere is dropped; a crash in
        between loses that work rather than doing it twice."""
        note = Turn(
            turn_id=uuid.uuid4().hex,
            event_key=event_key,
            platform=platform,
            thread_key=f"once:{event_key}",  # a thread of its own: it orders no member turn
            user_key="",
            kind="once",
            status=TurnStatus.DELIVERED,
        )
        first = await self._store.turns.record(note)
        if not first:
            log.info("duplicate event dropped", extra={"event_key": event_key})
        return first

    async def feedback(self, user: ChatUser, turn_id: str, value: str) -> bool:
        """The member's 👍 ("up") or 👎 ("down") on their turn's answer, kept with the turn
        and counted; False when the turn is gone or is not theirs."""
        if value not in ("up", "down"):
            raise InputRejected(InputRejected.BAD_VALUE, detail="feedback is up or down")
        kept = await self._store.turns.save_feedback(turn_id, user.key, value)
        if kept:
            metrics.FEEDBACK.labels(value).inc()
            log.info("answer feedback", extra={"turn_id": turn_id, "feedback": value})
        return kept

    async def turn_of(self, event_key: str) -> Turn | None:
        """The ledger row of an event, if it was already taken."""
        return await self._store.turns.get(event_key)

    def _image_tool(self, kind: TurnKind, choice: ImageChoice | None) -> ImageOptions | None:
        default = self._config.image
        if kind is TurnKind.ASK:
            return default if self._config.image_tool_on_ask else None
        choice = choice or ImageChoice()
        return check_image_options(
            ImageOptions(
                size=choice.size or default.size,
                quality=choice.quality or default.quality,
                format=choice.format or default.format,
                action=choice.action,
            )
        )

    async def again(
        self,
        event_key: str,
        user: ChatUser,
        turn_id: str,
        redo: Redo,
        *,
        route: str = "",
        thread: ThreadRef | None = None,
        size: str | None = None,
        instruction: str = "",
    ) -> Turn | None:
        """A click on an earlier turn's picture or failure, recorded as a new turn (None: the
        click was recorded before). Only the turn's member may; a picture edit takes the
        `instruction`, another size its `size`. `thread` is where the conversation is now
        (it may have moved into a thread opened from the answer).

        A retry reuses the failed turn's completion body and key: Samsar charges it once,
        whether or not the first try reached it.
        """
        earlier = await self._store.turns.load(turn_id)
        if earlier is None or earlier.request is None:
            raise InputRejected(InputRejected.GONE)
        if earlier.user_key != user.key:
            raise NotThreadOwner(earlier.request.user.display_name)
        asked = earlier.request
        request = dataclasses.replace(asked, user=user, thread=thread or asked.thread)
        if redo is Redo.RETRY:
            call = earlier.call
            if call is not None:
                call = dataclasses.replace(call, of_turn=call.of_turn or earlier.turn_id)
            async with self._thread_locks.hold(request.thread.key):
                return await self._record(event_key, request, route, call=call)
        image = asked.image or self._config.image
        choice = ImageChoice(size=image.size, quality=image.quality, format=image.format)
        if redo is Redo.REGENERATE:  # a fresh picture, not an edit of the last one
            choice = dataclasses.replace(choice, action="generate")
        elif redo is Redo.HD:
            choice = dataclasses.replace(choice, quality="high")
        elif redo is Redo.SIZE:
            choice = dataclasses.replace(choice, size=size)
        elif redo is Redo.EDIT:
            choice = dataclasses.replace(choice, action="edit")
            request = dataclasses.replace(request, text=instruction, attachments="")
        request = dataclasses.replace(request, kind=TurnKind.IMAGINE, attachments="")
        return await self.submit(event_key, request, route=route, choice=choice)

    # --- thread and account actions ----------------------------------------------------

    async def reset(self, user: ChatUser, thread: ThreadRef) -> bool:
        """Forget the thread's session so the next message starts a fresh one (owner or admin).

        A turn of the thread still running keeps its session for its own answer only."""
        async with self._thread_locks.hold(thread.key):
            session = await self._store.sessions.get(thread)
            if session is None:
                return False
            if session.owner_key != user.key and not self.admin.is_admin(user):
                raise NotThreadOwner(session.owner_display)
            return await self._store.sessions.delete(thread)

    async def move_thread(self, old: ThreadRef, new: ThreadRef) -> bool:
        """Carry a session to another thread (Discord opens a thread from the first answer)."""
        async with self._thread_locks.hold(old.key):
            session = await self._store.sessions.get(old)
            if session is None:
                return False
            await self._store.sessions.save(dataclasses.replace(session, thread=new))
            await self._store.sessions.delete(old)
            return True

    async def latest_thread(self, user: ChatUser, channel: ThreadRef) -> ThreadRef | None:
        """The member's most recently used conversation in `channel`'s channel (for a reset
        typed where no thread is known, such as a Slack slash command)."""
        session = await self._store.sessions.latest_owned(
            channel.platform, channel.workspace_id, channel.channel_id, user.key
        )
        return session.thread if session else None

    async def owner_of(self, thread: ThreadRef) -> tuple[str, str | None] | None:
        """Who a thread's conversation belongs to (user key, display name), or None when the
        thread is not a conversation: its session's owner, or before its first answer, the
        member whose turn, not answered yet, started it."""
        session = await self._store.sessions.get(thread)
        if session is not None:
            return session.owner_key, session.owner_display
        first = await self._store.turns.first_open_in_thread(thread.key)
        if first is None:
            return None
        shown = first.request.user.label if first.request else None
        return first.user_key, shown

    async def session_of(self, thread: ThreadRef) -> ThreadSession | None:
        """The thread's current session, if any (adapters use it to spot bot conversations)."""
        return await self._store.sessions.get(thread)

    async def credits(self, user: ChatUser) -> Balance:
        """The member's credit balance."""
        return await self._members.on_behalf(
            user, lambda identity, _: self._samsar.credits(identity), uuid.uuid4().hex
        )

    async def buy(self, user: ChatUser, credits: int, *, event_key: str) -> CheckoutLink:
        """A checkout link to buy `credits` credits."""
        if not 1 <= credits <= MAX_BUY_CREDITS:
            raise InputRejected(
                InputRejected.BAD_VALUE, detail=f"credits must be between 1 and {MAX_BUY_CREDITS}"
            )
        return await self._members.on_behalf(
            user,
            lambda identity, key: self._samsar.recharge_link(
                identity, credits, idempotency_key=key
            ),
            stable_key("buy", event_key),
        )

    async def studio_link(self, user: ChatUser, *, event_key: str) -> LoginLink:
        """A short-lived login link to Samsar Studio."""
        return await self._members.on_behalf(
            user,
            lambda identity, key: self._samsar.login_link(identity, idempotency_key=key),
            stable_key("studio", event_key),
        )

    # --- the member's own persona (their Samsar external-user system prompt) -----------

    async def persona_set(self, user: ChatUser, text: str | None, *, event_key: str) -> None:
        """Store (or with None, clear) the member's own system prompt on Samsar."""
        text = text.strip() if text else None
        if text is not None and len(text) > self._config.limits.max_chars:
            raise InputRejected(InputRejected.TOO_LONG, limit=self._config.limits.max_chars)
        # Kept here and sent with the member's conversations, below the admins' instructions;
        # their Samsar system prompt is cleared, since it would replace the operator's.
        await self._members.on_behalf(
            user,
            lambda identity, key: self._samsar.set_user_prompt(identity, None, idempotency_key=key),
            stable_key("persona", event_key),
        )
        stored = await self._store.users.get(user.key)
        if stored is not None:
            await self._store.users.save(dataclasses.replace(stored, persona=text or None))

    async def persona_show(self, user: ChatUser) -> str | None:
        """The member's persona as last set through the bot."""
        stored = await self._store.users.get(user.key)
        return stored.persona if stored else None

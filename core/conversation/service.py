"""The conversation use cases every adapter calls: ask, imagine, reset, credits, persona."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.conversation.admin import AdminActions
from core.conversation.limits import InputLimits, check_image_options, check_message
from core.conversation.locks import KeyedLocks
from core.conversation.members import Members
from core.conversation.prompts import developer_message, effective_prompt
from core.errors import BotError, InputRejected, NotFound, NotThreadOwner
from core.identity import stable_key
from core.models import (
    Balance,
    ChatUser,
    CheckoutLink,
    CompletionRequest,
    ExternalIdentity,
    ImageChoice,
    ImageOptions,
    IncomingMessage,
    LoginLink,
    Reply,
    ReplyImage,
    ThreadRef,
    ThreadSession,
    Turn,
    TurnStatus,
)
from core.ports import SamsarPort, Store

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


class ConversationService:
    """Runs member actions against Samsar: identity, session, prompts, billing exactly once."""

    def __init__(
        self,
        samsar: SamsarPort,
        store: Store,
        config: ConversationConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._samsar = samsar
        self._store = store
        self._config = config
        self._clock = clock
        self._thread_locks = KeyedLocks()
        self._members = Members(samsar, store.users)
        self.admin = AdminActions(samsar, store, self._members, config.admin_keys)

    # --- turns that reach the assistant ----------------------------------------------

    async def ask(self, message: IncomingMessage) -> Reply | None:
        """Answer a member's message in its thread; None when the event was already handled."""
        return await self._turn(message, kind="ask", image=self._ask_image_tool(), force=False)

    async def imagine(
        self, message: IncomingMessage, choice: ImageChoice | None = None
    ) -> Reply | None:
        """Generate an image for the prompt (the image tool is forced); None on a duplicate.

        What the member left out of `choice` comes from the operator's image settings.
        """
        default, choice = self._config.image, choice or ImageChoice()
        image = check_image_options(
            ImageOptions(
                size=choice.size or default.size,
                quality=choice.quality or default.quality,
                format=choice.format or default.format,
            )
        )
        return await self._turn(message, kind="imagine", image=image, force=True)

    async def turn_of(self, event_key: str) -> Turn | None:
        """The ledger row of an event, if it was already taken (adapters skip progress then)."""
        return await self._store.turns.get(event_key)

    def _ask_image_tool(self) -> ImageOptions | None:
        return self._config.image if self._config.image_tool_on_ask else None

    async def _turn(
        self, message: IncomingMessage, *, kind: str, image: ImageOptions | None, force: bool
    ) -> Reply | None:
        check_message(message.text, message.images, self._config.limits)
        thread = message.thread
        # The place in the thread's line is taken when this is called, so turns keep arrival
        # order; the store's lock extends that across replicas.
        async with (
            self._thread_locks.hold(thread.key),
            self._store.locks.hold(thread.key),
        ):
            session = await self._store.sessions.get(thread)
            if session is not None and session.owner_key != message.user.key:
                raise NotThreadOwner(session.owner_display)
            turn = Turn(
                turn_id=uuid.uuid4().hex,
                event_key=message.event_key,
                platform=thread.platform,
                thread_key=thread.key,
                user_key=message.user.key,
                kind=kind,
            )
            if not await self._store.turns.begin(turn):
                log.info(
                    "duplicate event dropped",
                    extra={"event_key": message.event_key, "thread_key": thread.key},
                )
                return None
            started = self._clock()
            try:
                reply = await self._complete(message, turn, session, image=image, force=force)
            except BaseException as exc:
                # Not a catch-all: whatever ends the turn (a Samsar error, a database error,
                # a shutdown) is recorded in the ledger and raised again.
                await self._close_failed(turn, started, exc)
                raise
            latency = self._elapsed_ms(started)
            await self._store.turns.finish(
                turn.turn_id,
                TurnStatus.DONE,
                latency_ms=latency,
                credits_charged=reply.credits.charged,
            )
            log.info(
                "turn done",
                extra={
                    "turn_id": turn.turn_id,
                    "thread_key": thread.key,
                    "kind": kind,
                    "latency_ms": latency,
                    "images": len(reply.images),
                },
            )
            return reply

    async def _complete(
        self,
        message: IncomingMessage,
        turn: Turn,
        session: ThreadSession | None,
        *,
        image: ImageOptions | None,
        force: bool,
    ) -> Reply:
        identity = await self._members.ensure(message.user)
        try:
            return await self._attempt(message, turn, session, identity, image, force, attempt=0)
        except NotFound:
            # Samsar no longer knows this user or session (another account, a reset sandbox):
            # bootstrap again and go on in a fresh session, once. A 404 charged nothing.
            log.warning("samsar lost the user or session", extra={"turn_id": turn.turn_id})
            await self._members.ensure(message.user, refresh=turn.turn_id)
            return await self._attempt(message, turn, None, identity, image, force, attempt=1)

    async def _attempt(
        self,
        message: IncomingMessage,
        turn: Turn,
        session: ThreadSession | None,
        identity: ExternalIdentity,
        image: ImageOptions | None,
        force: bool,
        *,
        attempt: int,
    ) -> Reply:
        # Each attempt has its own keys: Samsar replays a stored 404 for a reused key.
        suffix = f"{turn.turn_id}-{attempt}" if attempt else turn.turn_id
        new_session = session is None
        if session is None:
            session = await self._start_session(message, identity, suffix)
        effective = await effective_prompt(self._store.prompts, message.thread)
        request = CompletionRequest(
            session_id=session.session_id,
            text=message.text,
            images=message.images,
            developer_prompt=developer_message(effective, session.prompt_fingerprint),
            image_tool=image,
            force_image=force,
            max_output_tokens=self._config.max_output_tokens,
        )
        completion = await self._samsar.complete(
            identity, request, idempotency_key=f"turn-{suffix}"
        )
        await self._store.sessions.save(
            dataclasses.replace(
                session,
                last_response_id=completion.response_id or session.last_response_id,
                prompt_fingerprint=effective.fingerprint,
            )
        )
        images = tuple(
            ReplyImage(
                data=item.data,
                mime=item.mime,
                filename=f"samsar-{turn.turn_id[:8]}-{index}.{item.extension}",
                revised_prompt=item.revised_prompt,
            )
            for index, item in enumerate(completion.images, start=1)
        )
        return Reply(
            text=completion.text,
            images=images,
            credits=completion.credits,
            image_problems=completion.image_problems,
            session_id=session.session_id,
            turn_id=turn.turn_id,
            new_session=new_session,
        )

    async def _start_session(
        self, message: IncomingMessage, identity: ExternalIdentity, turn_id: str
    ) -> ThreadSession:
        session_id = await self._samsar.create_assistant_session(
            identity, idempotency_key=f"session-{turn_id}"
        )
        session = ThreadSession(
            thread=message.thread,
            session_id=session_id,
            owner_key=message.user.key,
            owner_display=message.user.label,
            created_at=datetime.now(UTC),
        )
        # Saved at once: a completion that fails after this keeps the thread on this session.
        await self._store.sessions.save(session)
        log.info("session started", extra={"thread_key": message.thread.key})
        return session

    async def _close_failed(self, turn: Turn, started: float, exc: BaseException) -> None:
        """Mark the turn failed; shielded, so a cancelled turn is still written down."""
        level = logging.INFO if isinstance(exc, BotError) else logging.ERROR
        log.log(
            level,
            "turn failed",
            extra={"turn_id": turn.turn_id, "thread_key": turn.thread_key, "error": repr(exc)},
        )
        finish = self._store.turns.finish(
            turn.turn_id,
            TurnStatus.FAILED,
            latency_ms=self._elapsed_ms(started),
            error=type(exc).__name__,
        )
        try:
            await asyncio.shield(finish)
        except Exception:  # the ledger itself may be what failed; the turn's error wins
            log.exception("could not record a failed turn", extra={"turn_id": turn.turn_id})

    def _elapsed_ms(self, started: float) -> int:
        return int((self._clock() - started) * 1000)

    # --- thread and account actions ----------------------------------------------------

    async def reset(self, user: ChatUser, thread: ThreadRef) -> bool:
        """Forget the thread's session so the next message starts a fresh one (owner or admin)."""
        async with self._thread_locks.hold(thread.key), self._store.locks.hold(thread.key):
            session = await self._store.sessions.get(thread)
            if session is None:
                return False
            if session.owner_key != user.key and not self.admin.is_admin(user):
                raise NotThreadOwner(session.owner_display)
            return await self._store.sessions.delete(thread)

    async def move_thread(self, old: ThreadRef, new: ThreadRef) -> bool:
        """Carry a session to another thread (Discord opens a thread from the first answer)."""
        async with self._thread_locks.hold(old.key), self._store.locks.hold(old.key):
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

    async def session_of(self, thread: ThreadRef) -> ThreadSession | None:
        """The thread's current session, if any (adapters use it to spot bot conversations)."""
        return await self._store.sessions.get(thread)

    async def credits(self, user: ChatUser) -> Balance:
        """The member's credit balance."""
        return await self._samsar.credits(await self._members.ensure(user))

    async def buy(self, user: ChatUser, credits: int, *, event_key: str) -> CheckoutLink:
        """A checkout link to buy `credits` credits."""
        if not 1 <= credits <= MAX_BUY_CREDITS:
            raise InputRejected(
                InputRejected.BAD_VALUE, detail=f"credits must be between 1 and {MAX_BUY_CREDITS}"
            )
        identity = await self._members.ensure(user)
        return await self._samsar.recharge_link(
            identity, credits, idempotency_key=stable_key("buy", event_key)
        )

    async def studio_link(self, user: ChatUser, *, event_key: str) -> LoginLink:
        """A short-lived login link to Samsar Studio."""
        identity = await self._members.ensure(user)
        return await self._samsar.login_link(
            identity, idempotency_key=stable_key("studio", event_key)
        )

    # --- the member's own persona (their Samsar external-user system prompt) -----------

    async def persona_set(self, user: ChatUser, text: str | None, *, event_key: str) -> None:
        """Store (or with None, clear) the member's own system prompt on Samsar."""
        text = text.strip() if text else None
        if text is not None and len(text) > self._config.limits.max_chars:
            raise InputRejected(InputRejected.TOO_LONG, limit=self._config.limits.max_chars)
        identity = await self._members.ensure(user)
        await self._samsar.set_user_prompt(
            identity, text or None, idempotency_key=stable_key("persona", event_key)
        )
        stored = await self._store.users.get(user.key)
        if stored is not None:
            await self._store.users.save(dataclasses.replace(stored, persona=text or None))

    async def persona_show(self, user: ChatUser) -> str | None:
        """The member's persona as last set through the bot."""
        stored = await self._store.users.get(user.key)
        return stored.persona if stored else None

"""Running one turn against Samsar: the member, the session, the prompt, the completion.

Every Samsar call of a turn carries a key derived from the turn, and the completion body is
fixed (and kept in the ledger) before the first try: running a turn again, after a timeout
or in another process after a crash, is a replay for Samsar, never a second charge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.conversation.limits import InputLimits, check_message
from core.conversation.members import Members
from core.conversation.prompts import (
    EffectivePrompt,
    compose,
    developer_message,
    effective_prompt,
)
from core.errors import BotError, InsufficientCredits, NotFound, NotThreadOwner, SamsarTimeout
from core.models import (
    Completion,
    CompletionRequest,
    ExternalIdentity,
    Prepared,
    Reply,
    ReplyImage,
    SamsarCall,
    SessionAdvance,
    ThreadSession,
    Turn,
    TurnRequest,
)
from core.ports import PromptsInForce, SamsarPort, Store, Working

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Patience:
    """How long to keep asking Samsar for a completion slower than the call's timeout."""

    total: float = 900.0  # seconds, from the first timeout
    first_wait: float = 2.0
    max_wait: float = 60.0


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """What every completion gets, and what members may send."""

    limits: InputLimits = field(default_factory=InputLimits)
    max_output_tokens: int | None = None
    patience: Patience = field(default_factory=Patience)
    buy_credits: int = 100  # the checkout an out-of-credits answer links to (0: no link)


class TurnExecutor:
    """Runs a claimed turn's Samsar part; `save_call` keeps the body before it is sent."""

    def __init__(
        self,
        samsar: SamsarPort,
        store: Store,
        members: Members,
        config: ExecutorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._samsar = samsar
        self._store = store
        self._members = members
        self._config = config
        self._clock = clock

    async def run(
        self, turn: Turn, request: TurnRequest, prepared: Prepared, owner: str, working: Working
    ) -> Reply:
        """The turn's reply; a BotError when Samsar or a rule refuses it."""
        check_message(request.text, prepared.images, self._config.limits)
        session: ThreadSession | None = None
        if turn.call is None:  # else fixed (the thread's owner checked) when it was claimed
            session = await self._store.sessions.get(request.thread)
            if session is not None and session.owner_key != prepared.user.key:
                raise NotThreadOwner(session.owner_display)
        identity = await self._members.ensure(prepared.user)
        try:
            return await self._run(turn, request, prepared, owner, working, session, identity)
        except InsufficientCredits as exc:
            exc.checkout_url = await self._checkout(turn, identity)
            raise

    def fix_early(
        self, turn: Turn, session: ThreadSession, in_force: PromptsInForce
    ) -> SamsarCall | None:
        """core.ports.FixCall: the body of a turn the ledger records or claims, when its thread
        is on a session of the turn's member (anything else is left to `run`)."""
        if session.owner_key != turn.user_key:
            return None
        return _call(session, compose(*in_force), new_session=False, attempt=0)

    async def _checkout(self, turn: Turn, identity: ExternalIdentity) -> str | None:
        """A checkout link for the member out of credits (one per turn, whatever the tries),
        so their answer can open it in one click; None when Samsar cannot give one now."""
        if self._config.buy_credits <= 0:
            return None
        try:
            link = await self._samsar.recharge_link(
                identity, self._config.buy_credits, idempotency_key=f"{turn.turn_id}:buy"
            )
        except BotError as exc:
            log.info("no checkout link", extra={"turn_id": turn.turn_id, "error": repr(exc)})
            return None
        return link.url

    async def _run(
        self,
        turn: Turn,
        request: TurnRequest,
        prepared: Prepared,
        owner: str,
        working: Working,
        session: ThreadSession | None,
        identity: ExternalIdentity,
    ) -> Reply:
        call = turn.call
        try:
            if call is None:
                call = await self._fix_call(turn, request, prepared, session, identity, attempt=0)
                await self._store.turns.save_call(turn.turn_id, owner, call)
            return await self._complete(turn, request, prepared, identity, call, working)
        except NotFound:
            if call is not None and call.attempt:
                raise
            # Samsar no longer knows this user or session (another account, a reset sandbox):
            # bootstrap again and go on in a fresh session, once. A 404 charged nothing.
            log.warning("samsar lost the user or session", extra={"turn_id": turn.turn_id})
            await self._members.ensure(prepared.user, refresh=turn.turn_id)
            call = await self._fix_call(turn, request, prepared, None, identity, attempt=1)
            await self._store.turns.save_call(turn.turn_id, owner, call)
            return await self._complete(turn, request, prepared, identity, call, working)

    async def _fix_call(
        self,
        turn: Turn,
        request: TurnRequest,
        prepared: Prepared,
        session: ThreadSession | None,
        identity: ExternalIdentity,
        *,
        attempt: int,
    ) -> SamsarCall:
        """The body of this turn's completion, fixed once: session, developer message."""
        new_session = session is None
        if session is None:
            session = await self._start_session(turn, request, prepared, identity, attempt)
        effective = await effective_prompt(self._store.prompts, request.thread, prepared.user.key)
        return _call(session, effective, new_session=new_session, attempt=attempt)

    async def _start_session(
        self,
        turn: Turn,
        request: TurnRequest,
        prepared: Prepared,
        identity: ExternalIdentity,
        attempt: int,
    ) -> ThreadSession:
        suffix = f"{turn.turn_id}-{attempt}" if attempt else turn.turn_id
        session_id = await self._samsar.create_assistant_session(
            identity, idempotency_key=f"session-{suffix}"
        )
        session = ThreadSession(
            thread=request.thread,
            session_id=session_id,
            owner_key=prepared.user.key,
            owner_display=prepared.user.label,
            created_at=datetime.now(UTC),
        )
        # Saved at once: a completion that fails after this keeps the thread on this session.
        await self._store.sessions.save(session)
        log.info("session started", extra={"thread_key": request.thread.key})
        return session

    async def _complete(
        self,
        turn: Turn,
        request: TurnRequest,
        prepared: Prepared,
        identity: ExternalIdentity,
        call: SamsarCall,
        working: Working,
    ) -> Reply:
        body = CompletionRequest(
            session_id=call.session_id,
            text=request.text,
            images=prepared.images,
            developer_prompt=call.developer_prompt,
            image_tool=request.image,
            force_image=request.force_image,
            max_output_tokens=self._config.max_output_tokens,
        )
        completion = await self._patiently(turn, identity, body, call, working)
        advance = SessionAdvance(
            request.thread, call.session_id, completion.response_id, call.prompt_fingerprint
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
            session_id=call.session_id,
            turn_id=turn.turn_id,
            new_session=call.new_session,
            advance=advance,  # the ledger applies it with the outcome
        )

    async def _patiently(
        self,
        turn: Turn,
        identity: ExternalIdentity,
        body: CompletionRequest,
        call: SamsarCall,
        working: Working,
    ) -> Completion:
        """The completion; a timeout is asked again with the same key (Samsar answers the
        first call's result), with backoff, for `patience.total` seconds at most."""
        patience = self._config.patience
        key = call.idempotency_key(turn.turn_id)
        deadline: float | None = None
        wait = patience.first_wait
        while True:
            try:
                return await self._samsar.complete(identity, body, idempotency_key=key)
            except SamsarTimeout:
                now = self._clock()
                if deadline is None:
                    deadline = now + patience.total
                    await working.slow()
                if now + wait > deadline:
                    raise
                log.info("samsar still working; asking again", extra={"turn_id": turn.turn_id})
                await asyncio.sleep(wait)  # the pace of asking again, not a wait for an event
                wait = min(wait * 2, patience.max_wait)


def _call(
    session: ThreadSession, effective: EffectivePrompt, *, new_session: bool, attempt: int
) -> SamsarCall:
    """The completion body on `session` with the admin prompt in force: its developer message
    only when that prompt changed since the session last got it."""
    return SamsarCall(
        session_id=session.session_id,
        new_session=new_session,
        developer_prompt=developer_message(effective, session.prompt_fingerprint),
        prompt_fingerprint=effective.fingerprint,
        attempt=attempt,
    )

"""The turn worker: claims turns from the ledger, runs them, delivers them, recovers them.

Whatever happens to a process, the ledger says what is left to do: a turn whose worker died
is claimed again once its lease expires (or at once, when a draining worker released it),
its Samsar call is sent again with the same key (a replay, not a second charge), and a
completed turn is delivered from its stored outcome. Deliveries that fail are tried again
with backoff, then end in a short note.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core import metrics
from core.errors import BotError, Undeliverable, Unexpected
from core.models import Reply, Take, Turn, TurnRequest, TurnStatus
from core.ports import Finished, FixCall, TurnChannel, TurnLedger
from core.turns.executor import TurnExecutor

log = logging.getLogger(__name__)

_NOT_SHOWN = "not shown"  # a waiting turn's place before it is first shown
_LOOP_GRACE = 5.0  # seconds the worker's loop may take to end its round when stopping


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Leases, pace, concurrency, delivery retries and retention."""

    lease: timedelta = timedelta(seconds=30)
    poll: float = 1.0  # seconds between looks for work other processes left
    max_running: int = 64  # turns this process works on at once; more wait in the ledger
    delivery_tries: int = 10
    delivery_wait: float = 2.0  # seconds before the second try, doubling...
    delivery_max_wait: float = 60.0  # ...up to this: ten tries span about six minutes
    retention: timedelta = timedelta(days=30)
    prune_every: float = 3600.0
    line_every: float = 1.0  # seconds between updates of waiting turns' places in line
    line_shown: int = 100  # waiting turns whose place is shown (the rest: when they get there)


class _Posted:
    """core.ports.Posted over the ledger."""

    def __init__(self, ledger: TurnLedger, turn_id: str, value: str) -> None:
        self._ledger = ledger
        self._turn_id = turn_id
        self._value = value
        self._writing: asyncio.Task[None] | None = None

    @property
    def value(self) -> str:
        return self._value

    async def save(self, value: str) -> None:
        await self.written()
        self._value = value
        await self._ledger.save_posted(self._turn_id, value)

    def save_soon(self, value: str) -> None:
        self._value = value
        earlier = self._writing

        async def write() -> None:
            if earlier is not None:
                await earlier
            await self._ledger.save_posted(self._turn_id, value)

        self._writing = asyncio.create_task(write())

    async def written(self) -> None:
        """Wait for what `save_soon` is writing; its failure is raised here."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def save_while_waiting(self, value: str) -> bool:
        if not await self._ledger.save_posted_while_waiting(self._turn_id, value):
            return False
        self._value = value
        return True


class TurnWorker:
    """Works on the turns of the platforms attached to it, a few at a time, until drained."""

    def __init__(
        self,
        ledger: TurnLedger,
        executor: TurnExecutor,
        config: WorkerConfig,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._executor = executor
        self._config = config
        self._now = now
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._channels: dict[str, TurnChannel] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        # Turns recorded here that have not started: their place in line as last shown. Only
        # the replica that recorded a turn shows its place, so no two post it.
        self._line: dict[str, int | str | None] = {}
        # Turns delivered (or given up) here, finished in the ledger with the next claim.
        self._finished: list[Finished] = []
        self._reserved = 0  # places kept for turns being recorded here, to run at once
        self._releasing: set[asyncio.Task[None]] = set()

    def attach(self, platform: str, channel: TurnChannel) -> None:
        """Take on the turns of `platform` (its adapter is ready to deliver them)."""
        self._channels[platform] = channel
        log.info("taking turns", extra={"platform": platform})
        self.wake()

    def wake(self) -> None:
        """Look for work now (a turn was recorded, or one ended)."""
        self._wake.set()

    @property
    def fix(self) -> FixCall:
        """How the ledger makes a turn's completion body ahead of its run."""
        return self._executor.fix_early

    def reserve(self, platform: str) -> Take | None:
        """A place for a turn about to be recorded here, when there is one: the ledger leases
        it to this worker as it is written if its thread is quiet. `taken` ends the
        reservation, whatever the record came to."""
        running = len(self._running) + self._reserved
        if self._stopping or platform not in self._channels or running >= self._config.max_running:
            return None
        self._reserved += 1
        return Take(self.owner, self._config.lease)

    def taken(self, turn: Turn | None) -> None:
        """End a reservation; work on `turn` now when the ledger leased it here."""
        self._reserved -= 1
        if turn is None:
            return
        if self._stopping:  # leased meanwhile: given back for another worker (or the next start)
            task = asyncio.create_task(self._release(turn.turn_id))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)
            return
        self._start(turn)
        metrics.RUNNING.set(len(self._running))

    def recorded(self, turn: Turn) -> None:
        """A turn was recorded here: look for work now, and show its place while it waits."""
        self._line[turn.turn_id] = _NOT_SHOWN
        self.wake()

    @property
    def running(self) -> int:
        """Turns this process is working on."""
        return len(self._running)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[TurnWorker]:
        """Work for the duration of the block; on exit, release what is left to recovery."""
        loop = asyncio.create_task(self._loop(), name="turn-worker")
        try:
            yield self
        finally:
            self._stopping = True
            self.wake()
            # Let the loop end its last round (a claim under way lands whole: its finishes
            # are not written twice, what it claimed is released below); stop it if it hangs.
            await asyncio.wait({loop}, timeout=_LOOP_GRACE)
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await self._abandon()
            await self._finish_now()

    async def drain(self, grace: float) -> None:
        """Take no more turns; let running ones finish within `grace` seconds, then give the
        rest back to the ledger, where another worker (or the next start) resumes them."""
        self._stopping = True
        self.wake()
        running = set(self._running.values())
        if running:
            log.info("draining turns", extra={"running": len(running), "grace_s": grace})
            await asyncio.wait(running, timeout=grace)
        await self._abandon()
        await self._finish_now()

    async def _abandon(self) -> None:
        """Release the leases of unfinished turns (no write of theirs lands after this), then
        stop them. Samsar keeps each call's result under its key for the resume."""
        left = dict(self._running)
        for turn_id in left:
            await self._release(turn_id)
        if self._releasing:
            await asyncio.wait(set(self._releasing))
        for task in left.values():
            task.cancel()
        if left:
            await asyncio.gather(*left.values(), return_exceptions=True)
            log.info("turns left to recovery", extra={"count": len(left)})

    async def _release(self, turn_id: str) -> None:
        """Give a turn's lease back (when that fails, the lease expires)."""
        try:
            await self._ledger.release(turn_id, self.owner)
        except Exception:
            log.warning("could not release a turn", extra={"turn_id": turn_id}, exc_info=True)

    async def _loop(self) -> None:
        last_prune = -self._config.prune_every
        last_line = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            try:
                await self._fill()
                if self._line and time.monotonic() - last_line >= self._config.line_every:
                    last_line = time.monotonic()
                    await self._show_line()
                if time.monotonic() - last_prune >= self._config.prune_every:
                    last_prune = time.monotonic()
                    await self._prune()
            except Exception:  # the database is down: keep the loop, try again shortly
                log.exception("turn worker could not reach the ledger")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._config.poll)

    async def _fill(self) -> None:
        """Finish the turns done since, and claim as many turns as there are free places, in
        one go."""
        while True:
            room = self._config.max_running - len(self._running) - self._reserved
            free = 0 if self._stopping else room
            finished, self._finished = self._finished, []
            if free <= 0 and not finished:
                return
            try:
                turns = await self._ledger.claim_some(
                    self.owner,
                    list(self._channels),
                    self._config.lease,
                    free,
                    fix=self._executor.fix_early,
                    finished=finished,
                )
            except BaseException:
                self._finished[:0] = finished  # written with the next claim (held meanwhile)
                raise
            metrics.RUNNING.set(len(self._running) + len(turns))
            for turn in turns:
                self._line.pop(turn.turn_id, None)
                self._start(turn)
            if len(turns) < free or free <= 0:
                return

    def _start(self, turn: Turn) -> None:
        task = asyncio.create_task(self._work(turn), name=f"turn:{turn.turn_id}")
        self._running[turn.turn_id] = task
        task.add_done_callback(self._done)

    async def _finish_now(self) -> None:
        """Finish what waits for the next claim (stopping: there will be none)."""
        finished, self._finished = self._finished, []
        for item in finished:
            try:
                await self._ledger.finish(item.turn_id, self.owner, item.status, images=item.images)
            except Exception:  # its lease expires: delivered again, editing what it posted
                log.warning("could not finish a turn", extra={"turn_id": item.turn_id})

    def _finish_later(self, turn: Turn, status: TurnStatus, *, images: bool = True) -> None:
        """Finished with the next claim, which this wakes (the thread's next turn with it)."""
        self._finished.append(Finished(turn.turn_id, status, images))
        self.wake()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task.get_name().removeprefix("turn:"), None)
        metrics.RUNNING.set(len(self._running))
        self.wake()

    async def _show_line(self) -> None:
        """Tell the members whose turns (recorded here) wait where they are in line."""
        waiting = await self._ledger.waiting(list(self._channels), self._config.line_shown)
        places: dict[str, tuple[Turn, int | None]] = {}
        ahead = 0
        for item in waiting:
            if not item.behind:
                ahead += 1
            places[item.turn.turn_id] = (item.turn, None if item.behind else ahead)
        for turn_id in [t for t in self._line if t not in places]:
            del self._line[turn_id]  # started (here or elsewhere), or beyond what is shown
        metrics.WAITING.set(len(self._line))
        for item in waiting:
            turn, place = places[item.turn.turn_id]
            shown = self._line.get(turn.turn_id, place)
            if shown == place or not item.in_order:
                continue  # unchanged, not recorded here, or after turns that show nothing yet
            self._line[turn.turn_id] = place
            channel, request = self._channels.get(turn.platform), turn.request
            if channel is None or request is None:
                continue
            posted = _Posted(self._ledger, turn.turn_id, turn.posted)
            try:
                await channel.waiting(turn, request, posted, place)
            except Exception as exc:  # only the place in line is lost; the turn still runs
                log.info("place in line not shown", extra={**_ids(turn), "error": repr(exc)})

    async def _prune(self) -> None:
        pruned = await self._ledger.prune(self._now() - self._config.retention)
        if pruned:
            log.info("old turns pruned", extra={"count": pruned})

    async def _work(self, turn: Turn) -> None:
        """Run (or resume) and deliver one claimed turn, keeping its lease meanwhile."""
        keeper = asyncio.create_task(self._keep_lease(turn.turn_id))
        posted: _Posted | None = None
        try:
            channel, request = self._channels[turn.platform], turn.request
            if request is None:  # a row from before durable turns: nothing to resume from
                self._finish_later(turn, TurnStatus.FAILED)
                return
            posted = _Posted(self._ledger, turn.turn_id, turn.posted)
            outcome = turn.outcome
            if turn.status is TurnStatus.RUNNING or outcome is None:
                if turn.runs > 1:
                    log.info("turn resumed", extra={"turn_id": turn.turn_id, "runs": turn.runs})
                    metrics.RECOVERED.inc()
                try:
                    outcome = await self._run(turn, request, channel, posted)
                except Undeliverable as exc:  # no one to answer there any more: no call
                    log.info("turn dropped: undeliverable", extra={**_ids(turn), "why": str(exc)})
                    self._finish_later(turn, TurnStatus.FAILED, images=False)
                    return
                await posted.written()  # the placeholder kept before the outcome
                started = turn.created_at or self._now()
                latency = int((self._now() - started).total_seconds() * 1000)
                if not await self._ledger.complete(
                    turn.turn_id, self.owner, outcome, latency_ms=latency
                ):
                    log.warning("turn lost its lease; left to its new worker", extra=_ids(turn))
                    return
                _log_outcome(turn, outcome, latency)
            await self._deliver(turn, request, channel, outcome, posted)
        except Exception:  # the ledger failed: the lease expires and the turn is resumed
            log.exception("turn work failed; left to recovery", extra=_ids(turn))
        finally:
            keeper.cancel()
            if posted is not None:
                await _quietly_written(turn, posted)

    async def _run(
        self, turn: Turn, request: TurnRequest, channel: TurnChannel, posted: _Posted
    ) -> Reply | BotError:
        """The outcome to store: the reply, or the error the member will be told."""
        try:
            async with channel.working(turn, request, posted) as working:
                prepared = await channel.prepare(turn, request)
                return await self._executor.run(turn, request, prepared, self.owner, working)
        except BotError as exc:
            return exc
        except Undeliverable:
            raise
        except Exception:  # a bug: the member still gets a sentence, the log the trace
            log.exception("turn failed unexpectedly", extra=_ids(turn))
            return Unexpected()

    async def _deliver(
        self,
        turn: Turn,
        request: TurnRequest,
        channel: TurnChannel,
        outcome: Reply | BotError,
        posted: _Posted,
    ) -> None:
        try:
            await channel.deliver(turn, request, outcome, posted)
        except Exception as exc:
            attempts = turn.delivery_attempts + 1
            last = isinstance(exc, Undeliverable) or attempts >= self._config.delivery_tries
            log.warning(
                "delivery failed",
                extra={**_ids(turn), "attempt": attempts, "error": repr(exc), "final": last},
            )
            if not last:
                metrics.DELIVERY_RETRIES.inc()
                wait = min(
                    self._config.delivery_wait * 2 ** (attempts - 1), self._config.delivery_max_wait
                )
                retry_at = self._now() + timedelta(seconds=wait)
                await self._ledger.postpone(
                    turn.turn_id, self.owner, retry_at=retry_at, delivery_attempts=attempts
                )
                return
            with contextlib.suppress(Exception):
                await channel.give_up(turn, request, posted)
            self._finish_later(turn, TurnStatus.FAILED, images=_kept_images(outcome))
            return
        status = TurnStatus.DELIVERED if isinstance(outcome, Reply) else TurnStatus.FAILED
        self._finish_later(turn, status, images=_kept_images(outcome))

    async def _keep_lease(self, turn_id: str) -> None:
        every = self._config.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)  # the pace of renewals, not a wait for an event
            try:
                if not await self._ledger.renew(turn_id, self.owner, self._config.lease):
                    log.warning("lease lost", extra={"turn_id": turn_id})
                    return
            except Exception:
                log.warning("lease not renewed", extra={"turn_id": turn_id}, exc_info=True)


def _kept_images(outcome: Reply | BotError) -> bool:
    return isinstance(outcome, Reply) and bool(outcome.images)


def _ids(turn: Turn) -> dict[str, str]:
    return {"turn_id": turn.turn_id, "thread_key": turn.thread_key, "event_key": turn.event_key}


def _log_outcome(turn: Turn, outcome: Reply | BotError, latency: int) -> None:
    answered = isinstance(outcome, Reply)
    charged = outcome.credits.charged if isinstance(outcome, Reply) else None
    name = "answered" if answered else type(outcome).__name__
    metrics.turn_ended(turn.kind, name, latency / 1000, charged)
    if isinstance(outcome, Reply):
        log.info(
            "turn done",
            extra={
                **_ids(turn),
                "kind": turn.kind,
                "latency_ms": latency,
                "images": len(outcome.images),
            },
        )
    else:
        log.info("turn failed", extra={**_ids(turn), "error": type(outcome).__name__})


async def _quietly_written(turn: Turn, posted: _Posted) -> None:
    """Let a placeholder's write end with its turn's work (a failure only logged: the turn's
    own outcome, or its recovery, is what counts)."""
    try:
        await posted.written()
    except Exception:
        log.warning("placeholder not kept", extra=_ids(turn), exc_info=True)

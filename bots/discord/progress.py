"""Never a silent wait: defer interactions at once, and show elapsed time on long generations."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import discord

from bots.discord.delivery import PRIVATE
from bots.discord.translate import Interaction
from core.conversation.locks import Place

log = logging.getLogger(__name__)

# 40060: "Interaction has already been acknowledged"; 10062: "Unknown interaction" (too late).
_ALREADY_HANDLED = frozenset({40060, 10062})


async def defer(interaction: Interaction, *, ephemeral: bool) -> bool:
    """Acknowledge with "thinking…"; False when Discord says it was handled already."""
    interaction.extras[PRIVATE] = ephemeral
    try:
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
    except discord.InteractionResponded:
        return False
    except discord.HTTPException as exc:
        if exc.code not in _ALREADY_HANDLED:
            raise
        log.info(
            "interaction not deferred (replayed or expired)",
            extra={"interaction_id": interaction.id, "code": exc.code},
        )
        return False
    return True


async def defer_in_line(interaction: Interaction, place: Place, *, ephemeral: bool) -> bool:
    """Acknowledge at once while keeping `place` in the conversation's line (taken before this
    call); when the interaction cannot be acknowledged, the place is given up."""
    try:
        deferred = await defer(interaction, ephemeral=ephemeral)
    except BaseException:
        place.abandon()
        raise
    if not deferred:
        place.abandon()
    return deferred


@contextlib.asynccontextmanager
async def elapsed_status(
    interaction: Interaction, status: Callable[[int], str], every: float
) -> AsyncIterator[None]:
    """While the block runs, edit the deferred response every `every` s with the elapsed time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop = asyncio.Event()

    async def tick() -> None:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
                return
            except TimeoutError:
                pass
            try:
                await interaction.edit_original_response(
                    content=status(round(loop.time() - started))
                )
            except discord.HTTPException as exc:
                log.debug("status update failed", extra={"status": exc.status})

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        # Let an edit in flight finish, so it can never land after the answer.
        stop.set()
        await task

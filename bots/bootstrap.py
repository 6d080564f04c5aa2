"""The one wiring place: settings in, a ready conversation service (and its resources) out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from core import offload
from core.conversation.limits import InputLimits
from core.conversation.service import ConversationConfig, ConversationService
from core.models import ImageOptions, Rate
from core.samsar.client import SamsarClient
from core.samsar.retry import RetryPolicy
from core.settings import Settings
from core.turns.executor import Patience
from core.turns.worker import WorkerConfig
from sandbox.app import SandboxConfig, running_sandbox
from storage.engine import default_database_url
from storage.problems import DatabaseUnavailable
from storage.store import SqlStore, open_store

log = logging.getLogger(__name__)


class MissingSettingError(Exception):
    """A setting the chosen command needs is not set."""


class SettingUnusable(Exception):
    """A setting whose value cannot work; the message names it and says why (no secret)."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"Check {setting}: {reason}.")
        self.setting = setting


@dataclass(frozen=True, slots=True)
class App:
    """Everything a bot needs, alive for the duration of `wire()`."""

    settings: Settings
    service: ConversationService
    store: SqlStore
    samsar: SamsarClient
    samsar_base_url: str


def conversation_config(settings: Settings) -> ConversationConfig:
    """The core's configuration from the settings."""
    return ConversationConfig(
        image=ImageOptions(
            size=settings.image_size, quality=settings.image_quality, format=settings.image_format
        ),
        image_tool_on_ask=settings.image_tool_on_ask,
        max_output_tokens=settings.max_output_tokens,
        limits=InputLimits(
            max_chars=settings.max_input_chars,
            max_images=settings.max_input_images,
            max_image_bytes=settings.max_input_image_bytes,
        ),
        admin_keys=settings.admin_user_keys,
        patience=Patience(total=settings.samsar_patience),
        buy_credits=settings.buy_link_credits,
        member_rate=(
            Rate(settings.member_turns_per_minute / 60, settings.member_turn_burst)
            if settings.member_turns_per_minute > 0
            else None
        ),
    )


def worker_config(settings: Settings) -> WorkerConfig:
    """The turn worker's leases, concurrency, delivery tries and retention."""
    return WorkerConfig(
        lease=timedelta(seconds=settings.turn_lease_seconds),
        max_running=settings.max_concurrent_turns,
        delivery_tries=settings.delivery_tries,
        retention=timedelta(days=settings.turn_retention_days),
    )


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded SQLite file under DATA_DIR."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return default_database_url(str(settings.data_dir))


def database_setting(settings: Settings) -> str:
    """The setting that chose the database: DATABASE_URL, else DATA_DIR."""
    return "DATABASE_URL" if settings.database_url is not None else "DATA_DIR"


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[SqlStore]:
    """The store the settings name, migrated; a database that cannot be used raises
    SettingUnusable naming DATABASE_URL or DATA_DIR."""
    opening = open_store(
        database_url(settings),
        pool_size=settings.database_pool_size,
        connect_timeout=settings.database_connect_timeout,
    )
    async with AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(opening)
        except DatabaseUnavailable as exc:
            raise SettingUnusable(database_setting(settings), str(exc)) from None
        yield store


@asynccontextmanager
async def wire(settings: Settings, *, sandbox: bool = False) -> AsyncIterator[App]:
    """Open the store (migrated), the Samsar client (or an in-process sandbox) and the service,
    whose turn worker runs for the duration of the block (platforms attach to it)."""
    async with AsyncExitStack() as stack:
        if sandbox:
            local = await stack.enter_async_context(
                running_sandbox(SandboxConfig(start_credits=settings.sandbox_start_credits))
            )
            base_url, api_key = local.base_url, local.api_key
            log.info("sandbox started", extra={"base_url": base_url})
        else:
            if settings.samsar_api_key is None:
                raise MissingSettingError("SAMSAR_API_KEY")
            base_url = settings.samsar_base_url
            api_key = settings.samsar_api_key.get_secret_value()
        store = await stack.enter_async_context(opened_store(settings))
        samsar = await stack.enter_async_context(
            SamsarClient(
                api_key,
                base_url,
                timeout=settings.samsar_timeout,
                completion_timeout=settings.samsar_completion_timeout,
                retry=RetryPolicy(attempts=settings.samsar_retry_attempts),
            )
        )
        service = ConversationService(
            samsar, store, conversation_config(settings), worker=worker_config(settings)
        )
        await stack.enter_async_context(service.worker.serving())
        settle()
        yield App(settings, service, store, samsar, base_url)


@asynccontextmanager
async def workers_warming() -> AsyncIterator[None]:
    """Start the picture workers (`core.offload`) in the background for the duration of the
    block: the first member to get a big picture no longer waits for a worker to start
    (measured: 1.8 s → 1.0 s for a 2048² turn) nor the loop for its spawn."""

    def said(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("picture workers not started ahead", extra={"error": repr(error)})

    task = asyncio.create_task(offload.warm(), name="warm-workers")
    task.add_done_callback(said)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def settle() -> None:
    """Keep what the process has built to serve out of the garbage collector's full passes:
    each walks every object, and with all a bot imports and opens, they stalled the event loop
    20 to 70 ms now and then, in the middle of turns. (What is built later is collected as
    ever; a pass now frees what the start left behind.)"""
    gc.collect()
    gc.freeze()

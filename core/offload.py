"""CPU-heavy work on big payloads, away from the event loop: in a small pool of processes.

A thread is not enough: `json.loads`, base64 and Pillow's encoders hold the GIL for the whole
of one call — hundreds of milliseconds for a 4096² picture — and the loop waits as long. The
pool's processes are spawned (nothing of this process's threads or sockets is copied), made
on first use, and what crosses to them is bytes in, bytes out. Small payloads are not worth
the trip: `offload` runs them in a thread instead.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

BIG = 1024 * 1024
"""Payloads from this many bytes go to a process; smaller ones to a thread."""

_WORKERS = max(1, min(2, (os.cpu_count() or 1) - 1))
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _quiet() -> None:
    """In a worker: no log output of its own (the caller logs what the result says)."""
    logging.getLogger().handlers[:] = [logging.NullHandler()]
    logging.getLogger().setLevel(logging.CRITICAL)


def _workers() -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("spawn")
            _pool = concurrent.futures.ProcessPoolExecutor(
                _WORKERS, mp_context=context, initializer=_quiet
            )
        return _pool


async def offload(size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args)` off the event loop: in a worker process when the payload is `size` bytes
    or more (`work` and its arguments must then pickle), else in a thread."""
    if size < BIG:
        return await asyncio.to_thread(work, *args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_workers(), _call, work, args, kwargs)


def _call(work: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
    return work(*args, **kwargs)


@atexit.register
def shutdown() -> None:
    """Stop the worker processes (at exit, or when a test wants them gone)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)

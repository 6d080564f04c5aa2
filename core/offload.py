"""CPU-heavy work on big payloads, away from the event loop: in a small pool of processes.

A thread is not enough: `json.loads`, base64 and Pillow's encoders hold the GIL for the whole
of one call — hundreds of milliseconds for a 4096² picture — and the loop waits as long. The
pool's processes are spawned (nothing of this process's threads or sockets is copied), made
on first use, and what crosses to them is small: a picture goes there and back as a `Parcel`,
a temporary file, because pickling its bytes holds the GIL too (about 30 ms each way for a
4096² picture) where a file is written and read with the GIL released. Small payloads are
not worth the trip: `offload` runs them in a thread instead.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

BIG = 1024 * 1024
"""Payloads from this many bytes go to a process; smaller ones to a thread."""

_WORKERS = max(1, min(2, (os.cpu_count() or 1) - 1))
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_parcels: str | None = None
"""The directory of the parcels, made by this process (removed by `shutdown`)."""
_given: str | None = None
"""In a worker: its parent's parcel directory (never removed by the worker)."""
_lock = threading.Lock()


def _start_worker(parcels: str, parent: int) -> None:
    """In a worker: its parent's parcel directory, no log output of its own (the caller logs
    what the result says), and an end with its parent."""
    global _given
    _given = parcels
    logging.getLogger().handlers[:] = [logging.NullHandler()]
    logging.getLogger().setLevel(logging.CRITICAL)
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int) -> None:
    """Exit once `parent` is gone (perhaps before this worker started). A worker waits for
    work on a pipe it holds both ends of (the pool's queue is handed over whole), so a parent
    killed outright (SIGKILL, the OOM killer) would leave it, and the pool's resource
    tracker, running for good."""
    while os.getppid() == parent:
        time.sleep(_WATCH_EVERY)  # the pace of a look at the parent, not a wait for an event
    os._exit(0)


_WATCH_EVERY = 0.5
"""Seconds between a worker's looks at its parent."""


def parcel_directory() -> str:
    """Where this process's parcels are: made on first use, made again under the same name
    if a cleaner of the temporary directory removed it while it was empty."""
    global _parcels
    with _lock:
        if _given is not None:
            directory = _given
        elif _parcels is None:
            directory = _parcels = tempfile.mkdtemp(prefix="samsar-bot-parcels-")
        else:
            directory = _parcels
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


def _workers() -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    parcels = parcel_directory()
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("spawn")
            _pool = concurrent.futures.ProcessPoolExecutor(
                _WORKERS,
                mp_context=context,
                initializer=_start_worker,
                initargs=(parcels, os.getpid()),
            )
        return _pool


async def offload(size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args)` off the event loop: in a worker process when the payload is `size` bytes
    or more (`work` and its arguments must then pickle), else in a thread."""
    if size < BIG:
        return await asyncio.to_thread(work, *args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_workers(), _call, work, args, kwargs)


async def warm() -> None:
    """Start the worker processes now, not at the first big picture: each is spawned from
    the event loop's thread and takes a second or so to import what it runs, which the first
    member to get a picture would wait for (and the loop stall for)."""
    loop = asyncio.get_running_loop()
    pool = _workers()
    await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(_WORKERS)))


def _ready() -> None:
    import core.samsar.completion  # noqa: F401 (what a worker runs most: its imports done)


def _call(work: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
    return work(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class Parcel:
    """Bytes in a temporary file, to cross to or from a worker process without being pickled.

    Packed and unpacked by blocking calls (in a worker, or through `send`/`receive`); a parcel
    nobody unpacks (its reader cancelled) is removed with its directory by `shutdown`.
    """

    path: str

    @classmethod
    def pack(cls, data: bytes | bytearray | memoryview) -> Parcel:
        """`data` written to a new file of the parcel directory."""
        descriptor, path = tempfile.mkstemp(prefix="parcel-", dir=parcel_directory())
        try:
            with open(descriptor, "wb") as file:
                file.write(data)
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise
        return cls(path)

    def unpack(self) -> bytes:
        """The bytes, once: the file is removed."""
        try:
            return Path(self.path).read_bytes()
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the file, if it is still there."""
        Path(self.path).unlink(missing_ok=True)


async def send(data: bytes | bytearray | memoryview) -> Parcel:
    """`data` as a parcel, written in a thread (the GIL is released while it is written)."""
    return await asyncio.to_thread(Parcel.pack, data)


async def receive(parcel: Parcel) -> bytes:
    """A parcel's bytes, read in a thread (the GIL is released while they are read)."""
    return await asyncio.to_thread(parcel.unpack)


@atexit.register
def shutdown() -> None:
    """Stop the worker processes and remove parcels left behind (at exit, or when a test
    wants them gone)."""
    global _pool, _parcels
    with _lock:
        pool, _pool = _pool, None
        parcels, _parcels = _parcels, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    if parcels is not None:
        shutil.rmtree(parcels, ignore_errors=True)

"""The native heap: fewer glibc arenas, free pages given back (issue #16, bench/README.md).

glibc's malloc gives each thread that allocates an arena of its own, up to 8 per core, and
keeps what is freed in them. A server's threads (aiosqlite's one per pooled connection, AnyIO's
worker pool, uvloop's resolver pool) allocate little and rarely, so their arenas are mostly
free memory. Elsewhere (musl, macOS) these functions do nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
import time
from functools import cache

M_ARENA_MAX = -8  # <malloc.h>
# What a room's big buffers (a document handed over in one sync step, its pending update, a
# compaction's rows) must add up to before the heap is trimmed, and the trims' spacing.
TRIM_AFTER_BYTES = 256 * 1024
TRIM_INTERVAL_S = 1.0


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (before threads start); True when it took effect."""
    libc = _glibc()
    return libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1


def release_free_memory() -> bool:
    """Collect garbage, then hand the allocator's free pages back to the OS; True on glibc."""
    gc.collect()
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def freeze_startup_objects() -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    Called once the server has started: the imports (FastAPI, pydantic, SQLAlchemy, pycrdt)
    leave a few hundred thousand objects that live as long as the process, and every full
    collection walked all of them again with the event loop stopped (one took 88 ms in the
    first upload of bench/offloop.py). Frozen, they are never collected, nor walked.
    """
    gc.freeze()


def thaw_startup_objects() -> None:
    """Give the frozen objects back to the collector (``gc.unfreeze``): the app is stopping.

    A process that runs several apps in turn (the test suite) would otherwise keep every
    stopped app's cycles for good.
    """
    gc.unfreeze()


def trim_native_heap() -> bool:
    """Hand the allocator's free pages back to the OS (no garbage collection); True on glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class HeapTrimmer:
    """Trims the native heap once big buffers were let go, at most once per ``interval_s``.

    glibc raises its mmap threshold to the size of the first big block freed, so later
    documents, updates and rows of that size come from the heap, and what is freed between
    the blocks that stay (the documents) is kept: ~1 MB per room of 1 MB (bench/README.md,
    "Memory per live room"). ``malloc_trim`` gives it back: ~0.1 ms for rooms of 1 MB, 4-15 ms
    after a 32 MiB room's compaction, so it runs in a thread (ctypes lets the GIL go) while
    the event loop goes on.
    """

    def __init__(
        self, *, after_bytes: int = TRIM_AFTER_BYTES, interval_s: float = TRIM_INTERVAL_S
    ) -> None:
        self._after_bytes = after_bytes
        self._interval_s = interval_s
        self._freed = 0
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0

    def freed(self, nbytes: int) -> None:
        """``nbytes`` of big buffers were let go (on the event loop): trim soon if enough."""
        self._freed += nbytes
        if self._freed < self._after_bytes or self._timer is not None:
            return
        delay = max(0.0, self._last + self._interval_s - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._trim)

    def cancel(self) -> None:
        """Drop a trim that is due (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _trim(self) -> None:
        self._timer = None
        self._freed = 0
        self._last = time.monotonic()
        asyncio.get_running_loop().run_in_executor(None, trim_native_heap)
        self.trims += 1

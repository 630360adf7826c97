"""The native heap: fewer glibc arenas, free pages given back (issue #16, bench/README.md).

glibc's malloc gives each thread that allocates an arena of its own, up to 8 per core, and
keeps what is freed in them. A server's threads (aiosqlite's one per pooled connection, AnyIO's
worker pool, uvloop's resolver pool) allocate little and rarely, so their arenas are mostly
free memory. Elsewhere (musl, macOS) these functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import cache

M_ARENA_MAX = -8  # <malloc.h>


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

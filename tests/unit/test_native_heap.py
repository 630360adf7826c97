"""glibc's malloc arenas are capped and free pages given back (issue #16: memory).

Each check runs in a fresh interpreter: arenas can only be capped before threads allocate.
"""

import platform
import subprocess
import sys

import pytest
from tests.support import unavailable


@pytest.fixture(autouse=True)
def _glibc() -> None:
    """These are glibc's malloc's knobs: CI (Debian) must have it; elsewhere, skip."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        unavailable("glibc's malloc")


# Threads that each malloc (bytes over obmalloc's 512-byte limit), then the heaps glibc made.
COUNT_ARENAS = """
import ctypes, re, sys, tempfile, threading
from pairpilot.observability.memory import limit_arenas
capped = limit_arenas(int(sys.argv[1])) if sys.argv[1] != "-" else None
together = threading.Barrier(6)
def work():  # all six alive at once: no thread can inherit an exited one's arena
    together.wait()
    keep = [bytes(4096) for _ in range(200)]
    together.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as f:
    stream = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    heaps = len(re.findall(r'<heap nr=', open(f.name).read()))
print(capped, heaps)
"""


def _arenas(cap: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", COUNT_ARENAS, cap],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},  # no MALLOC_ARENA_MAX from the caller
    )
    capped, heaps = out.stdout.split()
    return capped, int(heaps)


def test_limit_arenas_caps_the_heaps_that_threads_get():
    assert _arenas("2") == ("True", 2)


def test_without_a_cap_each_allocating_thread_gets_an_arena():
    _, heaps = _arenas("-")
    assert heaps > 2


def test_release_free_memory_returns_freed_pages_to_the_os():
    code = (
        "from pairpilot.observability.memory import release_free_memory\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4\n"
        "chunks = [bytes(100_000) for _ in range(600)]\n"  # ~60 MB in the brk heap
        "keep = chunks[-1:]\n"  # the heap's top stays in use: only trim can return the rest
        "del chunks\n"
        "before = rss()\n"
        "assert release_free_memory()\n"
        "print(before - rss())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(out.stdout) > 30_000  # KB given back

"""`pairpilot serve` with a probe inside it (bench/memory.py, issue #16); not part of the product.

    python bench/memory_agent.py SOCKET [--trace] [--imports] -- serve --host H --port P

A daemon thread answers one JSON command per connection on the unix socket SOCKET:
``{"cmd": "stats"}`` (RSS, smaps_rollup, glibc mallinfo2, SQLite's heap, threads, obmalloc),
``{"cmd": "snapshot", "path": ...}`` (a tracemalloc snapshot dumped to a file; needs --trace),
``{"cmd": "gc"}``, ``{"cmd": "trim"}`` (malloc_trim(0), RSS before and after),
``{"cmd": "malloc_info", "path": ...}`` (glibc's XML, one element per arena) and
``{"cmd": "modules"}`` (sys.modules in import order) and, with --imports, ``{"cmd": "imports"}``
(each module's own VmRSS and traced growth while it loaded, its nested imports' excluded). It
imports only standard library modules the server imports anyway, so the process's baseline is
the server's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import socket
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
LIBC.mallinfo2.restype = _Mallinfo2
LIBC.fopen.restype = ctypes.c_void_p
LIBC.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
LIBC.fclose.argtypes = [ctypes.c_void_p]
LIBC.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]


def _kb_fields(path: str) -> dict[str, int]:
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key.strip()] = int(parts[0])
    return out


def _sqlite_heap() -> dict[str, int] | None:
    """sqlite3_status64: bytes SQLite holds (all its connections), now and at the high mark."""
    if "_sqlite3" not in sys.modules:
        return None
    lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    cur, high = ctypes.c_int64(), ctypes.c_int64()
    out = {}
    for name, op in (("memory_used", 0), ("pagecache_overflow", 2), ("malloc_count", 9)):
        lib.sqlite3_status64(op, ctypes.byref(cur), ctypes.byref(high), 0)
        out[name] = cur.value
        out[name + "_high"] = high.value
    return out


def stats() -> dict[str, Any]:
    """What the process holds, by every measure that is cheap to read."""
    info = LIBC.mallinfo2()
    status = _kb_fields("/proc/self/status")
    threads = sorted((p / "comm").read_text().strip() for p in Path("/proc/self/task").iterdir())
    return {
        "rss_kb": status["VmRSS"],
        "rss_anon_kb": status["RssAnon"],
        "rss_file_kb": status["RssFile"],
        "smaps_rollup": _kb_fields("/proc/self/smaps_rollup"),
        "mallinfo2": {name: getattr(info, name) for name, _ in _Mallinfo2._fields_},
        "sqlite": _sqlite_heap(),
        "threads": threads,
        "python_threads": sorted(t.name for t in threading.enumerate()),
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_objects": len(gc.get_objects()),
        "tracemalloc": tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else None,
        "modules": len(sys.modules),
    }


class ImportCosts:
    """Each module's own cost: VmRSS and traced bytes while it loaded, minus its nested imports."""

    def __init__(self) -> None:
        import _frozen_importlib  # noqa: PLC0415 - the import system's own module

        self.rows: list[dict[str, Any]] = []
        self._stack: list[list[int]] = []
        self._main = threading.get_ident()
        self._bootstrap = _frozen_importlib
        self._original = _frozen_importlib._load_unlocked  # noqa: SLF001
        _frozen_importlib._load_unlocked = self._load  # noqa: SLF001

    @staticmethod
    def _now() -> tuple[int, int]:
        with open("/proc/self/statm", "rb") as f:  # noqa: PTH123 - the cheapest read there is
            resident = int(f.read().split()[1]) * 4
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        return resident, traced

    def _load(self, spec: Any) -> Any:
        if threading.get_ident() != self._main:
            return self._original(spec)
        rss0, traced0 = self._now()
        self._stack.append([0, 0])  # what nested imports cost, subtracted from this one's
        try:
            return self._original(spec)
        finally:
            rss1, traced1 = self._now()
            nested = self._stack.pop()
            total = (rss1 - rss0, traced1 - traced0)
            self.rows.append(
                {
                    "module": spec.name,
                    "self_rss_kb": total[0] - nested[0],
                    "self_traced": total[1] - nested[1],
                }
            )
            if self._stack:
                self._stack[-1][0] += total[0]
                self._stack[-1][1] += total[1]


COSTS: ImportCosts | None = None


def handle(command: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0911 - one per command
    """Answer one command."""
    cmd = command["cmd"]
    if cmd == "stats":
        return stats()
    if cmd == "snapshot":
        gc.collect()
        tracemalloc.take_snapshot().dump(command["path"])
        return {"path": command["path"], "traced": tracemalloc.get_traced_memory()}
    if cmd == "gc":
        return {"collected": gc.collect()}
    if cmd == "trim":
        before = _kb_fields("/proc/self/status")["VmRSS"]
        LIBC.malloc_trim(0)
        return {"before_kb": before, "after_kb": _kb_fields("/proc/self/status")["VmRSS"]}
    if cmd == "malloc_info":
        stream = LIBC.fopen(command["path"].encode(), b"w")
        LIBC.malloc_info(0, stream)
        LIBC.fclose(stream)
        return {"path": command["path"]}
    if cmd == "imports":
        return {"rows": COSTS.rows if COSTS else None}
    if cmd == "modules":
        return {"modules": list(sys.modules)}
    return {"error": f"unknown command {cmd}"}


def _serve(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        while True:
            conn, _ = listener.accept()
            with conn, conn.makefile("rw") as stream:
                try:
                    answer = handle(json.loads(stream.readline()))
                except Exception as exc:  # noqa: BLE001 - a probe answers every question
                    answer = {"error": repr(exc)}
                stream.write(json.dumps(answer) + "\n")


def main() -> None:
    """Start the probe thread, then the real CLI with the arguments after `--`."""
    sock, *rest = sys.argv[1:]
    flags = rest[: rest.index("--")]
    if "--trace" in flags:
        tracemalloc.start(int(os.environ.get("MEMPROBE_FRAMES", "1")))
    if "--imports" in flags:
        global COSTS  # noqa: PLW0603
        COSTS = ImportCosts()
    threading.Thread(target=_serve, args=(sock,), daemon=True, name="memprobe").start()
    from pairpilot.cli import main as cli_main  # noqa: PLC0415 - after the probe is up

    cli_main(rest[rest.index("--") + 1 :])


if __name__ == "__main__":
    main()

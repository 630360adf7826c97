"""What the kernel says about one process: CPU ticks, resident memory, bytes written."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    """VmRSS in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def io_counters(pid: int) -> dict[str, int]:
    """/proc/<pid>/io: write_bytes (to storage), wchar (passed to write()), and the rest."""
    out = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = int(value)
    return out


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class Mark:
    """A snapshot of the process at a named moment."""

    name: str
    t: float
    cpu_s: float
    rss_kb: int
    io: dict[str, int]
    machine: tuple[float, float] = (0.0, 0.0)


@dataclass
class Sampler:
    """Samples VmRSS every `interval` seconds in a thread while the process runs."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), rss_kb(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak_kb(self, start: float = 0.0, end: float = float("inf")) -> int:
        values = [kb for t, kb in self.samples if start <= t <= end]
        return max(values, default=0)

    def mean_kb(self, start: float = 0.0, end: float = float("inf")) -> float:
        values = [kb for t, kb in self.samples if start <= t <= end]
        return sum(values) / len(values) if values else 0.0

    def mark(self, name: str) -> Mark:
        return Mark(
            name,
            time.monotonic(),
            cpu_seconds(self.pid),
            rss_kb(self.pid),
            io_counters(self.pid),
            machine_busy_s(),
        )

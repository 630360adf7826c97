"""`pairpilot serve --workers N`: N server processes on one port, restarted when they die.

Each worker is `pairpilot serve --reuse-port` with the same environment: the kernel spreads
new connections over their SO_REUSEPORT sockets, and the workers share rooms through Redis
(REDIS_URL is required). Each is also told its index, N and the run's private directory
(mode 0700, removed at the end), where it listens for the connections of its rooms that landed
on another worker (room affinity, ``web.affinity``). A restarted worker keeps its index.
SIGTERM or SIGINT stops every worker gracefully (each flushes and closes its sockets with 1012)
and then the supervisor.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog

log = structlog.get_logger(__name__)
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 30.0


def _command(host: str, port: int, index: int, count: int, directory: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pairpilot",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--reuse-port",
        *("--worker-index", str(index), "--worker-count", str(count)),
        *("--worker-dir", str(directory)),
    ]


def supervise(workers: int, host: str, port: int) -> int:
    """Run ``workers`` processes until a signal; restart any that dies. The exit status."""
    directory = Path(tempfile.mkdtemp(prefix="pairpilot-workers-"))  # 0700: this user's only
    try:
        return _supervise(workers, lambda index: _command(host, port, index, workers, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _supervise(workers: int, command: Callable[[int], list[str]]) -> int:
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("stopping workers", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = [subprocess.Popen(command(index)) for index in range(workers)]  # noqa: S603
    log.info("workers started", workers=workers, pids=[child.pid for child in children])
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if child.poll() is not None and not stopping:
                log.warning("worker died; restarting it", pid=child.pid, status=child.returncode)
                time.sleep(RESTART_DELAY_S)
                children[index] = subprocess.Popen(command(index))  # noqa: S603
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0

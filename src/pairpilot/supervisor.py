"""The process's background tasks under one supervisor: none of them can stop quietly.

A supervised task is a coroutine function that runs until the process stops (the flusher's
loop, the stream bus's reader, publisher, lease renewer and presence heartbeat). An exception
it did not expect is logged, reported to Sentry once (again only after the task has stayed up
for ``STABLE_S``), and the task is started again after a capped exponential backoff; it is
*down* from the exception until it runs again, and ``/readyz`` names it meanwhile. A task
that returns has finished (its owner stopped it) and is not restarted. The tasks make their
own state safe to restart from: the flusher gives taken updates back to their rooms, the bus
falls back to a full state exchange.

One-off jobs (a compaction, an idle unload) are not restarted: their owners retry them. They
tell the supervisor of an unexpected exception through ``failed``, which logs it and reports
it once per kind of job until one succeeds (``succeeded``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from pairpilot.observability.sentry import report

log = structlog.get_logger(__name__)

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
# A task that has run this long since its last start counts as recovered: the next exception
# is reported again and its backoff starts from the first step.
STABLE_S = 60.0


class Supervisor:
    """Runs named background tasks, restarts them when they fail, and knows which are down."""

    def __init__(
        self,
        *,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first = backoff_first_s
        self._max = backoff_max_s
        self._sleep = sleep
        self._clock = clock
        self._down: dict[str, BaseException] = {}
        self._reported: set[str] = set()
        self.restarts: dict[str, int] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``run()`` in a task named ``name``, again after each unexpected exception.

        Cancelling the returned task stops it (the cancellation reaches ``run`` itself).
        """
        return asyncio.create_task(self._keep(name, run), name=name)

    def down(self) -> list[str]:
        """The names of the tasks that failed and have not started again yet."""
        return sorted(self._down)

    def failed(self, kind: str, error: BaseException, **tags: str) -> None:
        """A one-off job of ``kind`` raised ``error``: log it, report it once per kind."""
        log.error("background job failed", task=kind, exc_info=error, **tags)
        if kind not in self._reported:
            self._reported.add(kind)
            report(error, task=kind, **tags)

    def succeeded(self, kind: str) -> None:
        """A job of ``kind`` succeeded: its next failure is reported again."""
        self._reported.discard(kind)

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        delay = self._first
        while True:
            started = self._clock()
            try:
                await run()
            except Exception as exc:  # a supervisor's point: log, report, start again
                if self._clock() - started >= STABLE_S:
                    delay = self._first
                    self._reported.discard(name)
                self._down[name] = exc
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.error("background task failed", task=name, restart_in_s=delay, exc_info=exc)
                if name not in self._reported:
                    self._reported.add(name)
                    report(exc, task=name)
                try:
                    await self._sleep(delay)
                finally:
                    self._down.pop(name, None)
                delay = min(delay * 2, self._max)
            else:
                return
